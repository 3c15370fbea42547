"""Late readings land in the right interval, and the export register follows the same rules.

Hand-worked figures are in the comments; the property compares out-of-order arrival with
in-order arrival of the very same readings, so neither side is taken from the other.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BatchResult, DeviceState, RegisterRules, compute_batch
from batcher.ledger import settle
from readings.models import Reading
from tests.unit.batcher.conftest import DEVICE, at, persist
from tests.unit.batcher.test_batcher_properties import plausible_stream

WIDE = RegisterRules(tolerance_wh=1, max_power_w=100_000, late_window_ms=10**12)
RULES = RegisterRules(tolerance_wh=1, max_power_w=100_000)


def r(seq: int, when: str, wh: float, export_wh: float | None = None) -> Reading:
    return Reading(DEVICE, seq, at(when), wh, energy_export_wh=export_wh)


def run(batches: list[list[Reading]], rules: RegisterRules = RULES) -> list[BatchResult]:
    states: dict[str, DeviceState] = {}
    out = []
    for batch in batches:
        result = compute_batch(batch, persist(states), rules)
        states.update(result.states)
        out.append(result)
    return out


def summed(results: list[BatchResult], field: str = "energy_wh") -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for result in results:
        for (_, bucket), agg in result.aggregates.items():
            out[bucket] += getattr(agg, field)
    return dict(out)


def hours(figures: dict[str, float]) -> dict[str, float]:
    return {b: v for b, v in figures.items() if b.startswith("h#") and abs(v) > 1e-9}


class TestResplit:
    def test_a_late_reading_moves_energy_to_the_hours_it_shows(self) -> None:
        # 12:00 1,000 Wh and 14:00 3,000 Wh first; 12:59 2,900 Wh arrives in the next batch.
        # In order: 1,900 Wh over 12:00-12:59 (hour 12), then 100 Wh over 61 minutes, 1 of
        # them in hour 12: 100/61 = 1.6393 in hour 12, 6000/61 = 98.3607 in hour 13.
        results = run([[r(1, "12:00", 1_000), r(3, "14:00", 3_000)], [r(2, "12:59", 2_900)]])
        assert hours(summed(results)) == {
            "h#2026-11-27T12": pytest.approx(1_900 + 100 / 61),
            "h#2026-11-27T13": pytest.approx(6_000 / 61),
        }
        assert summed(results)["d#2026-11-27"] == pytest.approx(2_000)
        late = results[1].stats
        assert (late.late, late.late_resplit, late.energy_wh) == (1, 1, 0.0)

    def test_hours_already_written_get_a_correction(self) -> None:
        first = compute_batch([r(1, "12:00", 1_000), r(3, "14:00", 3_000)], {}, RULES)
        before = settle(first, {})
        assert {b for _, b in before.closed} == {"h#2026-11-27T12", "h#2026-11-27T13"}
        late = compute_batch([r(2, "12:59", 2_900)], persist(first.states), RULES)
        after = settle(late, before.ledgers)
        assert not after.closed
        # Hour 12 had 1,000 Wh (half the span), it is owed 901.64; hour 13 gives as much back.
        moved = 1_900 + 100 / 61 - 1_000
        assert after.corrections[(DEVICE, "h#2026-11-27T12")].energy_wh == pytest.approx(moved)
        assert after.corrections[(DEVICE, "h#2026-11-27T13")].energy_wh == pytest.approx(-moved)
        assert after.corrections[(DEVICE, "h#2026-11-27T12")].samples == 1
        assert "d#2026-11-27" in after.ledgers[DEVICE].open  # the day is still open: it just adds up

    def test_a_span_split_twice_ends_as_in_order(self) -> None:
        in_order = run([[r(1, "10:00", 0), r(2, "11:00", 10), r(3, "12:00", 400), r(4, "13:00", 410)]])
        shuffled = run([[r(1, "10:00", 0), r(4, "13:00", 410)], [r(3, "12:00", 400)], [r(2, "11:00", 10)]])
        assert hours(summed(shuffled)) == pytest.approx(hours(summed(in_order)))
        assert hours(summed(in_order)) == pytest.approx(
            {"h#2026-11-27T10": 10, "h#2026-11-27T11": 390, "h#2026-11-27T12": 10}
        )
        assert not shuffled[-1].states[DEVICE].register.spans  # no gap left to split

    def test_a_late_reading_after_a_reset_in_the_span_splits_on_the_new_cycle(self) -> None:
        # 1,000 Wh, then the register restarts: 50 Wh at 13:00 and 60 at 13:30 confirm it. The
        # reset counts the new cycle's 50 Wh over 11:00-13:00; the late 20 Wh at 12:00 shows
        # 20 of them came before 12:00 and 30 after.
        results = run(
            [[r(1, "11:00", 1_000), r(3, "13:00", 50), r(4, "13:30", 60)], [r(2, "12:00", 20)]],
        )
        assert hours(summed(results)) == pytest.approx(
            {"h#2026-11-27T11": 20, "h#2026-11-27T12": 30, "h#2026-11-27T13": 10}
        )
        assert summed(results, "resets")["d#2026-11-27"] == 1

    def test_a_register_value_the_span_cannot_hold_moves_nothing(self) -> None:
        results = run([[r(1, "12:00", 1_000), r(3, "14:00", 3_000)], [r(2, "13:00", 5_000)]])
        assert results[1].stats.late_resplit == 0
        assert hours(summed(results)) == pytest.approx({"h#2026-11-27T12": 1_000, "h#2026-11-27T13": 1_000})

    def test_noise_in_a_late_reading_changes_nothing_as_in_order(self) -> None:
        # In order, 999.5 after 1,000 is noise: the reference stays at 1,000 and the whole rise
        # to 1,200 spreads over 12:00-14:00, exactly as without the late reading.
        in_order = run([[r(1, "12:00", 1_000), r(2, "13:30", 999.5), r(3, "14:00", 1_200)]])
        late = run([[r(1, "12:00", 1_000), r(3, "14:00", 1_200)], [r(2, "13:30", 999.5)]])
        assert hours(summed(late)) == pytest.approx(hours(summed(in_order)))

    def test_a_late_reading_before_the_first_one_becomes_the_baseline(self) -> None:
        results = run([[r(5, "13:00", 1_500), r(6, "14:00", 2_000)], [r(4, "12:30", 1_200)]])
        assert results[1].stats.energy_wh == pytest.approx(300)  # newly counted, 12:30-13:00
        assert hours(summed(results)) == pytest.approx({"h#2026-11-27T12": 300, "h#2026-11-27T13": 500})

    def test_a_late_reading_older_than_the_window_is_a_sample_only(self) -> None:
        short = RegisterRules(tolerance_wh=1, max_power_w=100_000, late_window_ms=3_600_000)
        results = run([[r(1, "08:00", 0), r(3, "10:00", 200)], [r(4, "12:00", 300)], [r(2, "09:00", 100)]], short)
        assert (results[2].stats.late, results[2].stats.late_resplit) == (1, 0)
        assert results[2].aggregates[(DEVICE, "h#2026-11-27T09")].energy_wh == 0.0
        assert results[2].aggregates[(DEVICE, "h#2026-11-27T09")].samples == 1

    def test_a_seq_restart_forgets_the_old_numbering_s_spans(self) -> None:
        results = run([[r(10, "12:00", 1_000), r(12, "13:00", 1_100)], [r(1, "13:30", 1_150)], [r(11, "12:30", 1_050)]])
        assert results[1].stats.flags["seq_restart"] == 1
        assert not results[1].states[DEVICE].register.spans
        assert results[2].stats.late_resplit == 0

    def test_the_kept_spans_survive_a_snapshot(self) -> None:
        first = compute_batch([r(1, "12:00", 1_000), r(3, "14:00", 3_000)], {}, RULES)
        reloaded = persist(first.states)[DEVICE]
        assert reloaded.to_dict() == first.states[DEVICE].to_dict()
        assert [(s.start.seq, s.end.seq, s.energy_wh) for s in reloaded.register.spans] == [(1, 3, 2_000.0)]

    def test_a_device_that_skips_every_other_seq_keeps_a_bounded_state(self) -> None:
        readings = [r(2 * i, f"2026-11-27T{i // 60:02d}:{i % 60:02d}", float(i)) for i in range(1, 1_000)]
        state = run([readings])[0].states[DEVICE]
        assert len(state.register.spans) <= 64 and len(state.seen.to_list()) <= 64


@settings(max_examples=300, deadline=None)
@given(stream=plausible_stream(DEVICE), data=st.data())
def test_any_arrival_order_gives_the_intervals_of_in_order_arrival(stream: list[Reading], data: st.DataObject) -> None:
    order = data.draw(st.permutations(stream), label="arrival")
    cuts = sorted(data.draw(st.sets(st.integers(0, len(order)), max_size=5), label="cuts"))
    bounds = [0, *cuts, len(order)]
    shuffled = run([order[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)], WIDE)
    in_order = run([stream], WIDE)
    for field in ("energy_wh", "samples"):
        got, want = summed(shuffled, field), summed(in_order, field)
        for bucket in set(got) | set(want):
            assert got.get(bucket, 0.0) == pytest.approx(want.get(bucket, 0.0), rel=1e-9, abs=1e-6), (field, bucket)


class TestExport:
    def test_import_and_export_each_follow_the_rules_with_a_reset_on_each(self) -> None:
        # Import: 100 -> 150 -> reset to 5 -> 25 -> 45: counts 50, 5 (the new cycle), 20, 20.
        # Export: 1,000 -> 1,040 -> 1,070 -> reset to 3 -> 13: counts 40, 30, 3, 10. The
        # 12:45-13:00 span ends on the hour, so all of it is hour 12's.
        results = run(
            [
                [
                    r(1, "12:00", 100, 1_000),
                    r(2, "12:15", 150, 1_040),
                    r(3, "12:30", 5, 1_070),
                    r(4, "12:45", 25, 3),
                    r(5, "13:00", 45, 13),
                ]
            ]
        )
        got = results[0]
        h12 = got.aggregates[(DEVICE, "h#2026-11-27T12")]
        assert (h12.energy_wh, h12.resets) == (pytest.approx(50 + 5 + 20 + 20), 1)
        assert (h12.export_wh, h12.export_resets) == (pytest.approx(40 + 30 + 3 + 10), 1)
        h13 = got.aggregates[(DEVICE, "h#2026-11-27T13")]
        assert (h13.energy_wh, h13.export_wh, h13.samples) == (0.0, 0.0, 1)
        assert (got.stats.energy_wh, got.stats.export_wh) == (pytest.approx(95), pytest.approx(83))
        assert got.stats.flags == {"reset": 1, "export_reset": 1}

    def test_a_device_without_export_writes_the_same_items_as_before(self) -> None:
        agg = run([[r(1, "12:00", 100), r(2, "12:30", 150)]])[0].aggregates[(DEVICE, "h#2026-11-27T12")]
        assert "export_wh" not in agg.to_dict() and run([[r(1, "12:00", 100)]])[0].states[DEVICE].export is None

    def test_an_export_register_that_appears_later_starts_from_its_first_value(self) -> None:
        results = run([[r(1, "12:00", 100), r(2, "12:30", 150, 7_000)], [r(3, "13:00", 200, 7_010)]])
        assert summed(results, "export_wh")["d#2026-11-27"] == pytest.approx(10)
        assert summed(results)["d#2026-11-27"] == pytest.approx(100)

    def test_a_late_reading_re_splits_both_registers(self) -> None:
        results = run([[r(1, "12:00", 0, 0), r(3, "14:00", 200, 2_000)], [r(2, "12:30", 150, 100)]])
        assert hours(summed(results)) == pytest.approx({"h#2026-11-27T12": 150 + 50 / 3, "h#2026-11-27T13": 100 / 3})
        assert hours(summed(results, "export_wh")) == pytest.approx(
            {"h#2026-11-27T12": 100 + 1_900 / 3, "h#2026-11-27T13": 3_800 / 3}
        )
