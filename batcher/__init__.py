"""Pure batching logic: flush policy, dedup, meter registers, hourly and daily aggregates.

Nothing here touches the network or reads the clock; callers pass ``now_ms``.
"""

from batcher.batch import BatchResult, BatchStats, compute_batch
from batcher.buckets import BucketAggregate, day_key, hour_key, split_by_hour
from batcher.policy import BatchBuffer, BatchPolicy, FlushTrigger
from batcher.registers import DeviceState, Point, RegisterRules, RegisterTracker, Suspicion
from batcher.seen import SeenSeqs

__all__ = [
    "BatchBuffer",
    "BatchPolicy",
    "BatchResult",
    "BatchStats",
    "BucketAggregate",
    "DeviceState",
    "FlushTrigger",
    "RegisterTracker",
    "Point",
    "RegisterRules",
    "SeenSeqs",
    "Suspicion",
    "compute_batch",
    "day_key",
    "hour_key",
    "split_by_hour",
]
