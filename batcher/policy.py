"""When a shard's batch is flushed: every ``max_age_s`` or ``max_records`` or ``max_bytes``.

The buffer knows nothing of Kinesis or of time sources: the caller passes ``now_ms`` to every
method that needs the clock, so tests drive it with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class FlushTrigger(StrEnum):
    """Why a batch was flushed; a label of the ``batches_flushed`` metric."""

    SIZE = "size"
    AGE = "age"
    BYTES = "bytes"
    SHUTDOWN = "shutdown"
    SHARD_END = "shard_end"
    REPLAY = "replay"
    """The batch was rebuilt to the boundary of a flush that a crash interrupted."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_records: int = 10_000
    max_age_s: float = 30.0
    max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_age_s <= 0 or self.max_bytes < 1:
            raise ValueError(f"batch policy needs positive limits, got {self}")


class BatchBuffer(Generic[T]):
    """Records of one shard waiting for the next flush, in arrival order.

    The age of a batch counts from the moment its first record was added, so a quiet shard
    still flushes ``max_age_s`` after its first record arrived (the caller must ask ``due``
    on idle calls too).
    """

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self._items: list[T] = []
        self._bytes = 0
        self._opened_ms: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def items(self) -> list[T]:
        return self._items

    def add(self, item: T, size_bytes: int, now_ms: int) -> None:
        if self._opened_ms is None:
            self._opened_ms = now_ms
        self._items.append(item)
        self._bytes += size_bytes

    def age_ms(self, now_ms: int) -> int:
        return 0 if self._opened_ms is None else max(0, now_ms - self._opened_ms)

    def due(self, now_ms: int) -> FlushTrigger | None:
        """The trigger that makes the batch due now, or None. An empty batch is never due."""
        if not self._items:
            return None
        if len(self._items) >= self.policy.max_records:
            return FlushTrigger.SIZE
        if self._bytes >= self.policy.max_bytes:
            return FlushTrigger.BYTES
        if self.age_ms(now_ms) >= self.policy.max_age_s * 1000:
            return FlushTrigger.AGE
        return None

    def drain(self) -> list[T]:
        """Take every buffered item and start a new, empty batch."""
        items, self._items = self._items, []
        self._bytes = 0
        self._opened_ms = None
        return items
