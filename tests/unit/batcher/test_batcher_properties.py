"""Properties of compute_batch that must hold for any input (hypothesis).

Ground truth never comes from compute_batch itself: conservation is checked against the raw
registers and a plain overlap split written here; the other properties compare compute_batch
with itself under a change that must not matter (redelivery, batch boundaries, whatever the
arrival order).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BatchResult
from readings.models import Reading

HOUR_MS = 3_600_000
MAX_POWER_W = 100_000
START_MS = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp() * 1000)
PROPERTY = settings(max_examples=200, deadline=None)


# ---- strategies -------------------------------------------------------------------------------

gaps_ms = st.one_of(
    st.integers(min_value=0, max_value=20 * 60_000),
    st.integers(min_value=0, max_value=3 * HOUR_MS),
)
fractions = st.one_of(st.just(0.0), st.just(1.0), st.floats(min_value=0, max_value=1))


@st.composite
def plausible_stream(draw: st.DrawFn, device_id: str = "box-0001") -> list[Reading]:
    """In-order readings whose register only rises, never faster than the max power."""
    seq = draw(st.integers(min_value=0, max_value=10_000))
    ts_ms = START_MS + draw(st.integers(min_value=0, max_value=24 * HOUR_MS))
    energy_wh = draw(st.floats(min_value=0, max_value=1e6))
    out = [Reading(device_id, seq, ts_ms, energy_wh)]
    for gap_ms, fraction in draw(st.lists(st.tuples(gaps_ms, fractions), min_size=1, max_size=30)):
        seq += 1
        ts_ms += gap_ms
        energy_wh += fraction * MAX_POWER_W * gap_ms / HOUR_MS
        out.append(Reading(device_id, seq, ts_ms, energy_wh))
    return out


MOVES = ("rise", "rise", "rise", "noise", "drop", "back", "spike")
step_kinds = st.tuples(gaps_ms, st.sampled_from(MOVES), fractions, st.sampled_from((1, 1, 1, 2)))


def power_of(seq: int) -> float | None:
    # Instantaneous power plays no part in the register rules; vary it so aggregates differ.
    return None if seq % 4 == 0 else float(seq % 7) * 150.0


@st.composite
def messy_stream(draw: st.DrawFn, device_id: str = "box-0001") -> list[Reading]:
    """In-order readings with noise, resets, glitches and jumps mixed into normal rises.

    A seq step of 2 stands for a lost message.
    """
    seq = draw(st.integers(min_value=0, max_value=10_000))
    ts_ms = START_MS + draw(st.integers(min_value=0, max_value=24 * HOUR_MS))
    energy_wh = draw(st.floats(min_value=0, max_value=1e5))
    high_wh = energy_wh
    out = [Reading(device_id, seq, ts_ms, energy_wh, power_of(seq))]
    for gap_ms, move, fraction, seq_step in draw(st.lists(step_kinds, min_size=1, max_size=20)):
        seq += seq_step
        ts_ms += gap_ms
        if move == "rise":
            energy_wh += fraction * MAX_POWER_W * gap_ms / HOUR_MS
        elif move == "noise":
            energy_wh = max(0.0, energy_wh - fraction)
        elif move == "drop":
            energy_wh = fraction * energy_wh
        elif move == "back":
            energy_wh = high_wh + fraction * 10
        else:
            energy_wh += 1e7 * (1 + fraction)
        high_wh = max(high_wh, energy_wh)
        out.append(Reading(device_id, seq, ts_ms, energy_wh, power_of(seq)))
    return out


def two_devices(stream: Callable[[str], st.SearchStrategy[list[Reading]]]) -> st.SearchStrategy[list[Reading]]:
    """Two devices' streams interleaved by time (each device stays in seq order)."""
    return st.tuples(stream("box-a"), stream("box-b")).map(
        lambda pair: sorted(pair[0] + pair[1], key=lambda r: r.ts_ms)
    )


# ---- independent references and views ---------------------------------------------------------


def hour_of(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("h#%Y-%m-%dT%H")


def reference_hourly_energy(stream: list[Reading]) -> dict[str, float]:
    """Each consecutive register delta spread over the hours in proportion to covered time."""
    out: dict[str, float] = defaultdict(float)
    for a, b in zip(stream, stream[1:], strict=False):
        delta_wh = b.energy_wh - a.energy_wh
        if b.ts_ms == a.ts_ms:
            out[hour_of(b.ts_ms)] += delta_wh
            continue
        hour_ms = a.ts_ms // HOUR_MS * HOUR_MS
        while hour_ms < b.ts_ms:
            covered_ms = min(b.ts_ms, hour_ms + HOUR_MS) - max(a.ts_ms, hour_ms)
            out[hour_of(hour_ms)] += delta_wh * covered_ms / (b.ts_ms - a.ts_ms)
            hour_ms += HOUR_MS
    return out


def totals(results: list[BatchResult]) -> dict[tuple[str, str], dict[str, float]]:
    """The figures of several batches added up per (device, bucket)."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for result in results:
        for key, agg in result.aggregates.items():
            for name in (
                "energy_wh",
                "samples",
                "power_samples",
                "power_sum_w",
                "resets",
                "glitches",
                "jumps",
                "clock_steps",
                "seq_restarts",
                "seq_conflicts",
            ):
                out[key][name] += getattr(agg, name)
    return {key: dict(figures) for key, figures in out.items()}


def energy_sum(result: BatchResult, prefix: str) -> float:
    return sum(agg.energy_wh for (_, bucket), agg in result.aggregates.items() if bucket.startswith(prefix))


def snapshot(result: BatchResult) -> tuple[dict, dict]:
    return (
        {key: agg.to_dict() for key, agg in result.aggregates.items()},
        {device: state.to_dict() for device, state in result.states.items()},
    )


# ---- properties -------------------------------------------------------------------------------


@PROPERTY
@given(stream=plausible_stream())
def test_energy_is_conserved_for_plausible_registers(stream: list[Reading], batch) -> None:
    result = batch(stream)
    registered_wh = stream[-1].energy_wh - stream[0].energy_wh
    tolerance = {"rel": 1e-9, "abs": 1e-6}
    assert energy_sum(result, "h#") == pytest.approx(registered_wh, **tolerance)
    assert energy_sum(result, "d#") == pytest.approx(registered_wh, **tolerance)
    assert result.stats.energy_wh == pytest.approx(registered_wh, **tolerance)

    hourly = {b: a.energy_wh for (_, b), a in result.aggregates.items() if b.startswith("h#")}
    expected = reference_hourly_energy(stream)
    for bucket in set(hourly) | set(expected):
        assert hourly.get(bucket, 0.0) == pytest.approx(expected.get(bucket, 0.0), **tolerance), bucket

    samples = {b: a.samples for (_, b), a in result.aggregates.items() if b.startswith("h#") and a.samples}
    assert samples == dict(Counter(hour_of(r.ts_ms) for r in stream))
    assert not result.stats.flags


@PROPERTY
@given(stream=two_devices(messy_stream))
def test_hours_and_days_carry_the_same_energy_for_any_registers(stream: list[Reading], batch) -> None:
    result = batch(stream)
    tolerance = {"rel": 1e-9, "abs": 1e-6}
    assert energy_sum(result, "h#") == pytest.approx(energy_sum(result, "d#"), **tolerance)
    assert energy_sum(result, "h#") == pytest.approx(result.stats.energy_wh, **tolerance)
    assert all(agg.energy_wh >= -1e-6 for agg in result.aggregates.values())
    assert sum(a.samples for (_, b), a in result.aggregates.items() if b.startswith("d#")) == len(stream)


@st.composite
def redelivered(draw: st.DrawFn, stream: st.SearchStrategy) -> list[Reading]:
    """A stream with some readings delivered twice (QoS1), in any order."""
    readings = draw(stream)
    copies = draw(st.lists(st.sampled_from(readings), max_size=10))
    return draw(st.permutations(readings + copies))


@st.composite
def with_conflicts(draw: st.DrawFn, stream: st.SearchStrategy) -> list[Reading]:
    """Redelivered readings plus a few that reuse a seq with other values (a confused box)."""
    readings = draw(redelivered(stream))
    changes = st.fixed_dictionaries(
        {},
        optional={
            "ts_ms": st.integers(min_value=-60_000, max_value=60_000),
            "energy_wh": st.sampled_from((-5.0, 0.0, 5.0)),
            "power_w": st.sampled_from((None, 0.0, 10.0)),
        },
    )
    for original, change in draw(st.lists(st.tuples(st.sampled_from(readings), changes), max_size=3)):
        readings.append(
            Reading(
                original.device_id,
                original.seq,
                original.ts_ms + change.get("ts_ms", 0),
                max(0.0, original.energy_wh + change.get("energy_wh", 0.0)),
                change.get("power_w", original.power_w),
            )
        )
    return readings


@PROPERTY
@given(
    earlier=messy_stream("box-a"),
    stream=with_conflicts(two_devices(messy_stream)),
    data=st.data(),
)
def test_batch_boundaries_do_not_change_the_result_for_any_arrival_order(earlier, stream, data, batch, batches) -> None:
    # Shuffled, redelivered and conflicting readings: whatever the stream, cutting it into
    # batches anywhere gives the same totals and the same device states as one batch.
    prior = batch(earlier).states if data.draw(st.booleans(), label="with prior") else {}
    cuts = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(stream)), max_size=6), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    parts = [stream[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]

    whole = batch(stream, prior)
    split = batches(parts, prior)
    assert_same_totals(totals(split), totals([whole]))
    final = dict(prior)
    for result in split:
        final.update(result.states)
    assert {d: final[d].to_dict() for d in whole.states} == {d: s.to_dict() for d, s in whole.states.items()}


@PROPERTY
@given(stream=redelivered(two_devices(messy_stream)), data=st.data())
def test_feeding_readings_again_changes_nothing(stream, data, batch, batches) -> None:
    first, again = batches([stream, data.draw(st.permutations(stream), label="again")])
    assert again.aggregates == {}
    assert again.stats.energy_wh == 0.0
    assert again.stats.stored == 0
    assert {d: s.to_dict() for d, s in again.states.items()} == {d: s.to_dict() for d, s in first.states.items()}
    # The same readings twice in one batch are the same as once.
    assert snapshot(batch(stream + stream)) == snapshot(first)


@PROPERTY
@given(stream=two_devices(messy_stream), extra=messy_stream("box-a"), data=st.data())
def test_redelivery_mixed_into_a_later_batch_adds_only_the_new_readings(stream, extra, data, batches) -> None:
    # Continue one device after its stream with fresh seqs and later times.
    last = {r.device_id: r for r in stream}
    offset_seq = 100_000
    offset_ms = max(r.ts_ms for r in stream) - extra[0].ts_ms + 60_000
    fresh = [Reading(r.device_id, r.seq + offset_seq, r.ts_ms + offset_ms, r.energy_wh, r.power_w) for r in extra]
    assert all(r.seq > last[r.device_id].seq for r in fresh)
    repeats = data.draw(st.lists(st.sampled_from(stream), max_size=20), label="repeats")
    # The repeats land anywhere among the fresh readings, which keep their own order.
    slots = data.draw(
        st.lists(st.integers(min_value=0, max_value=len(fresh)), min_size=len(repeats), max_size=len(repeats)),
        label="slots",
    )
    mixed = list(fresh)
    for slot, repeat in sorted(zip(slots, repeats, strict=False), key=lambda pair: -pair[0]):
        mixed.insert(slot, repeat)
    assert totals(batches([stream, mixed])[1:]) == totals(batches([stream, fresh])[1:])


@PROPERTY
@given(stream=two_devices(messy_stream), data=st.data())
def test_batch_boundaries_do_not_change_the_result(stream, data, batch, batches) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(stream)), max_size=6), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    parts = [stream[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]

    assert_same_totals(totals(batches(parts)), totals([batch(stream)]))


def assert_same_totals(split: dict, whole: dict) -> None:
    assert set(split) == set(whole)
    for key, figures in whole.items():
        for name, value in figures.items():
            if name in ("energy_wh", "power_sum_w"):
                assert split[key][name] == pytest.approx(value, rel=1e-9, abs=1e-6), (key, name)
            else:
                assert split[key][name] == value, (key, name)


@st.composite
def hostile_stream(draw: st.DrawFn, device_id: str = "box-0001") -> list[Reading]:
    """Anything a broken or malicious box can send: seqs that repeat, restart and leap to 2**63 - 1,
    times that step back and forth within the accepted window, registers that go anywhere."""
    seqs = st.one_of(st.integers(min_value=0, max_value=40), st.sampled_from([2**63 - 1, 10**12]))
    times = st.integers(min_value=START_MS - 35 * 24 * HOUR_MS, max_value=START_MS + 6 * HOUR_MS)
    energies = st.one_of(st.floats(min_value=0, max_value=1e7), st.sampled_from([0.0, 1e13]))
    rows = draw(st.lists(st.tuples(seqs, times, energies), min_size=1, max_size=25))
    return [Reading(device_id, seq, ts_ms, energy_wh, power_of(seq)) for seq, ts_ms, energy_wh in rows]


@PROPERTY
@given(stream=st.tuples(hostile_stream("box-a"), hostile_stream("box-b")).map(lambda p: p[0] + p[1]), data=st.data())
def test_a_hostile_stream_counts_no_more_than_real_time_allows_however_it_is_cut(stream, data, batch, batches) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(stream)), max_size=4), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    whole = batch(stream)
    assert_same_totals(
        totals(batches([stream[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)])), totals([whole])
    )
    tolerance_wh = 1.0
    for device_id in ("box-a", "box-b"):
        own = [r for r in stream if r.device_id == device_id]
        # The time base only moves forward, to the latest time seen; a late reading before the
        # first one can extend it back to the earliest time sent. Every counted span lies within
        # that, and a return to an anchor re-covers spans at most once.
        span_ms = whole.states[device_id].newest.ts_ms - min(r.ts_ms for r in own)
        counted_wh = sum(a.energy_wh for (d, b), a in whole.aggregates.items() if d == device_id and b.startswith("d#"))
        assert counted_wh <= 2 * (MAX_POWER_W * span_ms / HOUR_MS + len(own) * tolerance_wh) + 1e-6
        assert all(a.energy_wh >= -1e-6 for (d, _), a in whole.aggregates.items() if d == device_id)
