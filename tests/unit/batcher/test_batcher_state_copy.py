"""The compiled copy of a device's state is ``DeviceState.copy``, field for field.

``compute_batch`` copies each device's prior state with ``batcher._steps.copy_state``. For any
state the batcher can reach (in order, messy, hostile, conflicting streams, seq restarts, late
readings, export registers), the copy must hold the same values, share exactly what ``copy``
shares and own exactly what ``copy`` owns, so that changing it never changes the prior state.
"""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import DeviceState
from batcher._steps import copy_state
from batcher.state import RegisterState
from readings.models import Reading
from tests.unit.batcher.conftest import run_batch
from tests.unit.batcher.test_batcher_common_step import edge_stream
from tests.unit.batcher.test_batcher_properties import hostile_stream, messy_stream, plausible_stream, with_conflicts

streams = st.one_of(
    plausible_stream(),
    messy_stream(),
    hostile_stream(),
    with_conflicts(messy_stream()),
    edge_stream(),
)


def sharing(original: object, copied: object) -> dict[str, bool]:
    """Which fields the copy shares with the original (the same object) and which it owns."""
    return {f.name: getattr(copied, f.name) is getattr(original, f.name) for f in fields(original)}  # type: ignore[arg-type]


def check(state: DeviceState) -> None:
    mine, theirs = copy_state(state), state.copy()
    assert type(mine) is DeviceState and mine.to_dict() == theirs.to_dict() == state.to_dict()
    assert sharing(state, mine) == sharing(state, theirs)
    for name in ("register", "export"):
        original = getattr(state, name)
        if isinstance(original, RegisterState):
            assert sharing(original, getattr(mine, name)) == sharing(original, getattr(theirs, name))
    for name in ("seen", "prev_seen"):
        original = getattr(state, name)
        if original is not None:
            mine_seen, theirs_seen = getattr(mine, name), getattr(theirs, name)
            assert mine_seen.to_list() == theirs_seen.to_list() and mine_seen.max_intervals == theirs_seen.max_intervals
            assert all(a is not b for a, b in zip(mine_seen._intervals, original._intervals, strict=True))
    # Changing the copy leaves the original as it was.
    before = state.to_dict()
    mine.seen.add(10**12)
    mine.gaps.append(None)  # type: ignore[arg-type]
    mine.register.spans.append(None)  # type: ignore[arg-type]
    if mine.seen._intervals:
        mine.seen._intervals[0][0] = -1
    assert state.to_dict() == before


@settings(max_examples=400, deadline=None)
@given(stream=streams, data=st.data())
def test_the_compiled_copy_is_the_copy(stream: list[Reading], data: st.DataObject) -> None:
    states: dict[str, DeviceState] = {}
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=3)))
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        states.update(run_batch(stream[lo:hi], states).states)
        for state in states.values():
            check(state)


def test_a_fresh_state_copies_too() -> None:
    check(DeviceState())
