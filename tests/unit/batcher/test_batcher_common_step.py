"""The common step's shortcut in ``compute_batch`` changes nothing, to the last bit.

``batcher.batch._common_steps`` takes the readings that are the common step (the next seq soon
after the last one, a register that rises plausibly, nothing held) without the general
machinery. Whatever the stream, the batch computed with it must equal the one computed by the
general rules alone: every aggregate and quarter, every device state, every statistic. The
streams are the property tests' own (in order, messy, hostile, redelivered, conflicting) plus
one built on the shortcut's edges: quarter and hour boundaries, the silence limit, the max-power
bound and the tolerance exactly, lost seqs, the late window, an export register appearing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BatchResult, DeviceState
from batcher.completeness import DEFAULT_SILENCE_LIMIT_MS
from readings.models import Reading
from tests.unit.batcher.conftest import RULES, persist, run_batch
from tests.unit.batcher.test_batcher_properties import (
    START_MS,
    hostile_stream,
    messy_stream,
    plausible_stream,
    two_devices,
    with_conflicts,
)

HOUR_MS = 3_600_000
QUARTER_MS = 900_000
EXAMPLES = settings(max_examples=400, deadline=None)


@contextmanager
def general_rules_only() -> Iterator[None]:
    with mock.patch("batcher.batch._common_steps", lambda run, readings, index: index):
        yield


def figures(result: BatchResult) -> dict[str, Any]:
    """Everything a batch yields, as plain values (floats compared exactly)."""
    return {
        "aggregates": {key: (asdict(agg), agg.to_dict()) for key, agg in result.aggregates.items()},
        "states": {device: state.to_dict() for device, state in result.states.items()},
        "stats": {f.name: getattr(result.stats, f.name) for f in fields(result.stats) if f.name != "flags"}
        | {"flags": dict(result.stats.flags)},
        "stored": result.stored,
    }


def both_ways(parts: list[list[Reading]], prior: dict[str, DeviceState]) -> tuple[list[Any], list[Any]]:
    """Each batch in turn, state persisted between them: with the shortcut, and without it."""
    out = []
    for shortcut in (True, False):
        states, results = dict(prior), []
        for part in parts:
            if shortcut:
                result = run_batch(part, states)
            else:
                with general_rules_only():
                    result = run_batch(part, states)
            states.update(result.states)
            results.append(figures(result))
        out.append(results)
    return out[0], out[1]


def cut(data: st.DataObject, stream: list[Reading]) -> list[list[Reading]]:
    cuts = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(stream)), max_size=4), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    return [stream[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]


# ---- a stream on the shortcut's edges ---------------------------------------------------------

SPACINGS_MS = [
    0,
    1,
    10_000,
    QUARTER_MS - 1,
    QUARTER_MS,
    QUARTER_MS + 1,
    DEFAULT_SILENCE_LIMIT_MS,
    DEFAULT_SILENCE_LIMIT_MS + 1,
    HOUR_MS,
    -10_000,  # a clock stepped back
    24 * HOUR_MS - 10_000,  # two of these, and the late window ends a few steps later
    25 * HOUR_MS,
]


@st.composite
def edge_stream(draw: st.DrawFn, device_id: str = "box-0001") -> list[Reading]:
    seq = draw(st.integers(min_value=0, max_value=100))
    # Start on a quarter boundary, or a hair before one, or anywhere.
    ts_ms = START_MS + draw(st.sampled_from([0, QUARTER_MS - 10_000, HOUR_MS - 10_000, HOUR_MS - 1, 12_345]))
    energy_wh = draw(st.sampled_from([0.0, 1000.0, 123456.7]))
    export: float | None = None
    out = [Reading(device_id, seq, ts_ms, energy_wh, 100.0)]
    for _ in range(draw(st.integers(min_value=1, max_value=60))):
        seq += draw(st.sampled_from([1, 1, 1, 1, 1, 2, 3, 0, -1]))
        spacing_ms = draw(st.sampled_from(SPACINGS_MS)) if draw(st.booleans()) else 10_000
        ts_ms += spacing_ms
        bound_wh = RULES.max_rise_wh(ts_ms - spacing_ms, ts_ms)
        move = draw(st.sampled_from(["rise", "rise", "rise", "bound", "over", "flat", "noise", "tolerance", "drop"]))
        if move == "rise":
            energy_wh += draw(st.floats(min_value=0, max_value=max(0.0, bound_wh - 1.0)))
        elif move == "bound":
            energy_wh += bound_wh  # exactly the max-power bound (from the last reading)
        elif move == "over":
            energy_wh += bound_wh * 1.5 + 1
        elif move == "noise":
            energy_wh = max(0.0, energy_wh - 0.5)
        elif move == "tolerance":
            energy_wh = max(0.0, energy_wh - 1.0)  # exactly the tolerance
        elif move == "drop":
            energy_wh = energy_wh / 3
        power = draw(st.sampled_from([None, 0.0, 100.0, 2500.0, -0.0]))
        if draw(st.integers(0, 15)) == 0:
            export = 0.0 if export is None else export + 5.0  # an export register appears, or rises
        out.append(Reading(device_id, max(seq, 0), ts_ms, energy_wh, power, energy_export_wh=export))
    return out


@EXAMPLES
@given(stream=st.one_of(edge_stream(), two_devices(edge_stream)), data=st.data())
def test_the_shortcut_changes_nothing_on_its_edges(stream: list[Reading], data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="shuffled a little"):
        i = data.draw(st.integers(min_value=0, max_value=len(stream) - 1), label="moved")
        stream = [*stream[:i], *stream[i + 1 :], stream[i]]  # one reading arrives last
    with_shortcut, without = both_ways(cut(data, stream), {})
    assert with_shortcut == without


@EXAMPLES
@given(
    earlier=st.one_of(messy_stream("box-a"), plausible_stream("box-a")),
    stream=st.one_of(
        two_devices(plausible_stream),
        two_devices(messy_stream),
        with_conflicts(two_devices(messy_stream)),
        st.tuples(hostile_stream("box-a"), hostile_stream("box-b")).map(lambda p: p[0] + p[1]),
    ),
    data=st.data(),
)
def test_the_shortcut_changes_nothing_for_any_stream(
    earlier: list[Reading], stream: list[Reading], data: st.DataObject
) -> None:
    prior = persist(run_batch(earlier).states) if data.draw(st.booleans(), label="with prior") else {}
    with_shortcut, without = both_ways(cut(data, stream), prior)
    assert with_shortcut == without


def test_the_common_step_takes_the_shortcut() -> None:
    """Readings every 10 s with a rising register are the common step: the shortcut must take them."""
    stream = [Reading("box-0001", seq, START_MS + seq * 10_000, 1000.0 + seq, 500.0) for seq in range(1, 61)]
    calls: list[int] = []
    from batcher import batch as module

    original = module._DeviceRun.take

    def counted(self: Any, r: Reading) -> None:
        calls.append(r.seq)
        original(self, r)

    with mock.patch.object(module._DeviceRun, "take", counted):
        result = run_batch(stream)
    assert calls == [1]  # only the first reading, which has nothing to step from
    assert result.stats.stored == 60


def test_a_step_onto_the_hour_counts_in_the_quarter_it_left() -> None:
    """The last 10 s of an hour: the energy is the hour's (its last quarter), the sample the next hour's."""
    stream = [
        Reading("box-0001", 1, START_MS + HOUR_MS - 10_000, 100.0),
        Reading("box-0001", 2, START_MS + HOUR_MS, 101.0),
    ]
    with_shortcut, without = both_ways([stream], {})
    assert with_shortcut == without
    hours = {key[1]: agg for key, (_, agg) in with_shortcut[0]["aggregates"].items() if key[1].startswith("h#")}
    assert (hours["h#2026-11-27T00"]["energy_wh"], hours["h#2026-11-27T01"]["samples"]) == (1.0, 1)


def test_the_late_window_lets_the_first_reading_go_on_the_common_step() -> None:
    """48 h of readings every 10 minutes: the first reading (head, register baseline) is let go."""
    step_ms = 10 * 60_000
    stream = [Reading("box-0001", n, START_MS + n * step_ms, 10.0 * n) for n in range(1, 6 * 48 + 3)]
    with_shortcut, without = both_ways([stream[:5], stream[5:]], {})
    assert with_shortcut == without
    state = with_shortcut[-1]["states"]["box-0001"]
    assert "head" not in state and "first" not in state
    assert "head" in with_shortcut[0]["states"]["box-0001"]
