"""BatchBuffer / BatchPolicy: when a shard's batch is due, and what draining does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BatchBuffer, BatchPolicy, FlushTrigger

T0_MS = 1_800_000_000_000


def make_buffer(max_records: int = 3, max_age_s: float = 10.0, max_bytes: int = 1_000) -> BatchBuffer[str]:
    return BatchBuffer(BatchPolicy(max_records=max_records, max_age_s=max_age_s, max_bytes=max_bytes))


def fill(buffer: BatchBuffer[str], count: int, size_bytes: int = 1, now_ms: int = T0_MS) -> None:
    for i in range(count):
        buffer.add(f"record-{i}", size_bytes, now_ms)


class TestPolicy:
    @pytest.mark.parametrize(
        "limits",
        [
            {"max_records": 0},
            {"max_age_s": 0},
            {"max_age_s": -1.0},
            {"max_bytes": 0},
        ],
    )
    def test_rejects_non_positive_limits(self, limits: dict) -> None:
        with pytest.raises(ValueError):
            BatchPolicy(**limits)

    def test_is_frozen(self) -> None:
        policy = BatchPolicy()
        with pytest.raises(AttributeError):
            policy.max_records = 5  # type: ignore[misc]


class TestEmptyBuffer:
    def test_is_never_due_however_late(self) -> None:
        buffer = make_buffer(max_age_s=1.0)
        assert buffer.due(T0_MS) is None
        assert buffer.due(T0_MS + 10**9) is None

    def test_has_no_age(self) -> None:
        assert make_buffer().age_ms(T0_MS + 5_000) == 0


class TestTriggers:
    def test_size_triggers_at_max_records(self) -> None:
        buffer = make_buffer(max_records=3)
        fill(buffer, 2)
        assert buffer.due(T0_MS) is None
        fill(buffer, 1)
        assert buffer.due(T0_MS) is FlushTrigger.SIZE

    def test_bytes_trigger_at_max_bytes(self) -> None:
        buffer = make_buffer(max_records=100, max_bytes=1_000)
        buffer.add("a", 600, T0_MS)
        assert buffer.due(T0_MS) is None
        buffer.add("b", 400, T0_MS)
        assert buffer.size_bytes == 1_000
        assert buffer.due(T0_MS) is FlushTrigger.BYTES

    def test_one_oversized_record_is_due_at_once(self) -> None:
        buffer = make_buffer(max_bytes=1_000)
        buffer.add("big", 5_000, T0_MS)
        assert buffer.due(T0_MS) is FlushTrigger.BYTES

    def test_age_counts_from_the_first_record(self) -> None:
        buffer = make_buffer(max_records=100, max_age_s=10.0)
        buffer.add("first", 1, T0_MS)
        buffer.add("second", 1, T0_MS + 9_000)
        assert buffer.age_ms(T0_MS + 9_000) == 9_000
        assert buffer.due(T0_MS + 9_999) is None
        assert buffer.due(T0_MS + 10_000) is FlushTrigger.AGE

    def test_a_quiet_shard_still_flushes_by_age(self) -> None:
        buffer = make_buffer(max_age_s=0.5)
        buffer.add("only", 1, T0_MS)
        assert buffer.due(T0_MS + 499) is None
        assert buffer.due(T0_MS + 60_000) is FlushTrigger.AGE

    def test_a_clock_behind_the_first_record_gives_age_zero(self) -> None:
        buffer = make_buffer()
        buffer.add("x", 1, T0_MS)
        assert buffer.age_ms(T0_MS - 5_000) == 0
        assert buffer.due(T0_MS - 5_000) is None


class TestDrain:
    def test_returns_items_in_arrival_order(self) -> None:
        buffer = make_buffer(max_records=10)
        for name in ("c", "a", "b"):
            buffer.add(name, 1, T0_MS)
        assert buffer.drain() == ["c", "a", "b"]

    def test_resets_count_bytes_and_age(self) -> None:
        buffer = make_buffer(max_records=2, max_age_s=10.0, max_bytes=100)
        fill(buffer, 2, size_bytes=60)
        assert buffer.due(T0_MS) is FlushTrigger.SIZE
        buffer.drain()
        assert len(buffer) == 0
        assert buffer.items == []
        assert buffer.size_bytes == 0
        assert buffer.due(T0_MS + 60_000) is None

    def test_next_batch_ages_from_its_own_first_record(self) -> None:
        buffer = make_buffer(max_records=100, max_age_s=10.0)
        buffer.add("old", 1, T0_MS)
        buffer.drain()
        buffer.add("new", 1, T0_MS + 20_000)
        assert buffer.age_ms(T0_MS + 25_000) == 5_000
        assert buffer.due(T0_MS + 25_000) is None
        assert buffer.due(T0_MS + 30_000) is FlushTrigger.AGE

    def test_drained_list_is_not_touched_by_later_adds(self) -> None:
        buffer = make_buffer(max_records=10)
        buffer.add("a", 1, T0_MS)
        drained = buffer.drain()
        buffer.add("b", 1, T0_MS)
        assert drained == ["a"]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    arrivals_ms=st.lists(st.integers(min_value=0, max_value=20_000), min_size=20, max_size=20),
    wait_ms=st.integers(min_value=0, max_value=20_000),
)
def test_due_matches_the_three_limits(sizes: list[int], arrivals_ms: list[int], wait_ms: int) -> None:
    """Due exactly when some limit is reached, and the trigger names a limit that is reached.

    Which trigger wins when several are reached at once is not specified, so not asserted.
    """
    policy = BatchPolicy(max_records=8, max_age_s=10.0, max_bytes=1_000)
    buffer: BatchBuffer[int] = BatchBuffer(policy)
    clock_ms = T0_MS
    for i, size in enumerate(sizes):
        clock_ms += arrivals_ms[i] // 10
        buffer.add(i, size, clock_ms)
    now_ms = clock_ms + wait_ms

    reached: set[FlushTrigger] = set()
    if sizes:
        first_ms = T0_MS + arrivals_ms[0] // 10
        if len(sizes) >= 8:
            reached.add(FlushTrigger.SIZE)
        if sum(sizes) >= 1_000:
            reached.add(FlushTrigger.BYTES)
        if now_ms - first_ms >= 10_000:
            reached.add(FlushTrigger.AGE)
    trigger = buffer.due(now_ms)
    if reached:
        assert trigger in reached
    else:
        assert trigger is None
