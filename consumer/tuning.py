"""The record processor's garbage-collector thresholds.

A shard's processor keeps every device's state between batches and builds each batch's
aggregates: at a few thousand devices, hundreds of thousands of live objects. With CPython's
default thresholds (700, 10, 10) a young collection runs every few hundred readings and an old
one every few batches, each walking those objects: at 2,500 devices that was half of the batch
computation's time (``python -m bench.hot_path``). Nothing the processor builds relies on the
cycle collector to be freed (readings, states and aggregates go by reference counting), so the
young threshold is raised: collections still run, a hundred times less often, and the garbage
they may find waits at most that many allocations.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (70_000, 10, 10)


def tune_gc() -> None:
    """Set the processor's thresholds (``GC_THRESHOLDS``) for this process."""
    gc.set_threshold(*GC_THRESHOLDS)
