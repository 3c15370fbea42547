"""Pure batching logic: flush policy, dedup, meter registers, hourly and daily aggregates.

Nothing here touches the network or reads the clock; callers pass ``now_ms``.
"""

from batcher.batch import BatchResult, BatchStats, compute_batch
from batcher.buckets import BucketAggregate, day_key, hour_key, split_by_hour
from batcher.policy import BatchBuffer, BatchPolicy, FlushTrigger
from batcher.registers import RegisterRules, RegisterTracker
from batcher.seen import SeenSeqs
from batcher.state import DeviceState, Point, RegisterState, Suspicion

__all__ = [
    "BatchBuffer",
    "BatchPolicy",
    "BatchResult",
    "BatchStats",
    "BucketAggregate",
    "DeviceState",
    "FlushTrigger",
    "RegisterState",
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
