"""Completeness per interval: seq gaps, missing readings, silences, and gaps a spool drain fills.

Expected figures are worked out by hand in the comments; the properties compare arrival
orders with each other and with plain sums, never with the code's own output alone.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BatchResult, DeviceState, RegisterRules, compute_batch
from batcher.completeness import Gap, spread, step
from readings.models import Reading
from tests.unit.batcher.conftest import DEVICE, at, persist
from tests.unit.batcher.test_batcher_properties import plausible_stream

RULES = RegisterRules(tolerance_wh=1, max_power_w=100_000, late_window_ms=10**12)
MINUTE = 60_000


def minute(seq: int, at_minute: int, wh: float | None = None) -> Reading:
    """A reading ``at_minute`` minutes after 12:00, its register rising 10 Wh a minute."""
    return Reading(DEVICE, seq, at("12:00") + at_minute * MINUTE, 10.0 * at_minute if wh is None else wh)


def run(batches: list[list[Reading]], rules: RegisterRules = RULES) -> list[BatchResult]:
    states: dict[str, DeviceState] = {}
    out = []
    for batch in batches:
        result = compute_batch(batch, persist(states), rules)
        states.update(result.states)
        out.append(result)
    return out


def figures(results: list[BatchResult], *names: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for result in results:
        for (_, bucket), agg in result.aggregates.items():
            for name in names:
                out[bucket][name] += getattr(agg, name)
    return {b: {n: v for n, v in f.items() if v} for b, f in out.items() if any(f.values())}


class TestSpread:
    def test_missing_readings_sit_at_evenly_spaced_instants(self) -> None:
        # 12:30 -> 14:30 with 3 missing: at 13:00, 13:30 and 14:00 (an instant on the hour is
        # that hour's).
        gap = step(10, at("12:30"), 14, at("14:30"), None, 15 * MINUTE)
        got = {h: (g, m) for h, g, m, _ in spread(gap)}
        assert got == {at("12:00"): (0, 0), at("13:00"): (2, 2), at("14:00"): (1, 1)}

    def test_a_long_step_is_silent_for_its_whole_length_and_counts_what_the_cadence_misses(self) -> None:
        # 111 minutes without a reading at a 1-minute cadence: 110 readings missing, no seq gap.
        gap = step(10, at("12:09"), 11, at("14:00"), MINUTE, 15 * MINUTE)
        assert (gap.seq_gaps, gap.missing, gap.silent) == (0, 110, True)
        silent = {h: s for h, _, _, s in spread(gap)}
        assert silent == {at("12:00"): 51 * MINUTE, at("13:00"): 60 * MINUTE}
        assert sum(m for _, _, m, _ in spread(gap)) == 110

    def test_a_leap_of_the_counter_is_not_billions_of_lost_readings(self) -> None:
        gap = step(1, at("12:00"), 2**62, at("12:01"), MINUTE, 15 * MINUTE)
        assert gap.seq_gaps == gap.missing == 61  # at most one a second, and one more

    @settings(max_examples=300, deadline=None)
    @given(
        start=st.integers(0, 10 * 3_600_000),
        length=st.integers(0, 30 * 3_600_000),
        seqs=st.integers(1, 100_000),
        cadence=st.one_of(st.none(), st.integers(1_000, 3_600_000)),
    )
    def test_the_hours_add_up_to_the_step(self, start: int, length: int, seqs: int, cadence: int | None) -> None:
        gap = step(5, start, 5 + seqs, start + length, cadence, 15 * MINUTE)
        pieces = list(spread(gap))
        assert sum(p[1] for p in pieces) == gap.seq_gaps
        assert sum(p[2] for p in pieces) == gap.missing >= gap.seq_gaps
        assert sum(p[3] for p in pieces) == (length if gap.silent else 0)
        assert all(start - 3_600_000 < h <= start + length for h, *_ in pieces)


class TestOutageAndDrain:
    # A box reads every minute from 12:00. From 12:10 to 14:09 it is cut off and spools; at
    # 14:10 it is back: its newest reading arrives first, then the spool drains in order.
    before = [minute(s, s - 1) for s in range(1, 11)]
    spooled = [minute(s, s - 1) for s in range(11, 131)]
    back = [minute(131, 130)]

    def test_until_the_drain_the_outage_is_a_hole(self) -> None:
        got = figures(run([self.before, self.back]), "seq_gaps", "missing", "silent_ms", "samples")
        # The step 12:09 -> 14:10 hides seqs 11..130, one a minute: 50 in hour 12, 60 in 13,
        # 10 in 14; its 121 minutes are silent.
        assert got["h#2026-11-27T12"] == {"seq_gaps": 50, "missing": 50, "silent_ms": 51 * MINUTE, "samples": 10}
        assert got["h#2026-11-27T13"] == {"seq_gaps": 60, "missing": 60, "silent_ms": 60 * MINUTE}
        assert got["h#2026-11-27T14"] == {"seq_gaps": 10, "missing": 10, "silent_ms": 10 * MINUTE, "samples": 1}

    def test_a_drain_in_several_batches_ends_complete(self) -> None:
        drains = [self.spooled[i : i + 25] for i in range(0, len(self.spooled), 25)]
        results = run([self.before, self.back, *drains])
        got = figures(results, "seq_gaps", "missing", "silent_ms", "samples")
        assert got == {
            "h#2026-11-27T12": {"samples": 60},
            "h#2026-11-27T13": {"samples": 60},
            "h#2026-11-27T14": {"samples": 11},
            "d#2026-11-27": {"samples": 131},
        }
        assert results[-1].states[DEVICE].gaps == []
        assert sum(r.stats.seq_gaps for r in results) == sum(r.stats.seq_gaps_filled for r in results) == 120

    def test_a_box_that_was_off_leaves_a_silence_but_no_seq_gap(self) -> None:
        got = figures(run([[*self.before, minute(11, 130)]]), "seq_gaps", "missing", "silent_ms")
        # Cadence 1 minute; 121 minutes from 12:09 to 14:10: 120 readings missing, spread evenly.
        assert got["d#2026-11-27"] == {"missing": 120, "silent_ms": 121 * MINUTE}

    def test_kept_gaps_survive_a_snapshot(self) -> None:
        state = run([self.before, self.back])[-1].states[DEVICE]
        assert persist({DEVICE: state})[DEVICE].to_dict() == state.to_dict()
        assert [(g.start_seq, g.end_seq) for g in state.gaps] == [(10, 131)]
        assert Gap.from_list(state.gaps[0].to_list()) == state.gaps[0]


@settings(max_examples=300, deadline=None)
@given(stream=plausible_stream(DEVICE), data=st.data())
def test_any_arrival_order_ends_with_the_seq_gaps_and_silences_of_in_order_arrival(stream, data) -> None:
    order = data.draw(st.permutations(stream), label="arrival")
    cuts = sorted(data.draw(st.sets(st.integers(0, len(order)), max_size=5), label="cuts"))
    bounds = [0, *cuts, len(order)]
    shuffled = figures(run([order[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]), "seq_gaps", "silent_ms")
    in_order = figures(run([stream]), "seq_gaps", "silent_ms")
    assert shuffled == in_order
    assert all("seq_gaps" not in f for f in in_order.values())  # the stream has every seq
