"""One batch's effect on the store, computed from its readings and the devices' prior state.

``compute_batch`` is a pure function: the same readings and the same prior states always give
the same result, whatever order the readings of one device came in. That is what lets a
replayed batch rebuild exactly the updates an interrupted flush was writing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from batcher.buckets import BucketAggregate, day_key, hour_key, split_by_hour
from batcher.registers import DeviceState, Meter, Point, RegisterRules
from readings.models import Reading


@dataclass(slots=True)
class BatchStats:
    readings: int = 0
    stored: int = 0
    """Readings counted in ``samples`` (every reading not seen before)."""
    duplicates: int = 0
    late: int = 0
    energy_wh: float = 0.0
    flags: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(slots=True)
class BatchResult:
    aggregates: dict[tuple[str, str], BucketAggregate]
    """``(device_id, bucket)`` -> what this batch adds to that bucket."""
    states: dict[str, DeviceState]
    """Every device of the batch -> its state after the batch."""
    stats: BatchStats


_FLAG_FIELDS = {"reset": "resets", "glitch": "glitches", "jump": "jumps"}


def _reading_order(r: Reading) -> tuple[int, int, float, bool, float]:
    # seq decides; ts, register and power only break ties between two different readings that
    # claim the same seq, so the outcome cannot depend on arrival order. Power is in the key
    # because the kept reading's power goes into the aggregates and the state.
    return (r.seq, r.ts_ms, r.energy_wh, r.power_w is not None, r.power_w or 0.0)


def compute_batch(
    readings: Iterable[Reading],
    prior: Mapping[str, DeviceState],
    rules: RegisterRules,
) -> BatchResult:
    """The aggregate deltas and the new device states for one batch.

    ``prior`` holds the state of each device before the batch (a device missing from it has
    never been seen). The prior states are not modified.
    """
    by_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        by_device[r.device_id].append(r)

    aggregates: dict[tuple[str, str], BucketAggregate] = {}
    states: dict[str, DeviceState] = {}
    stats = BatchStats()

    for device_id, device_readings in by_device.items():
        device_readings.sort(key=_reading_order)
        state = DeviceState.from_dict(prior[device_id].to_dict()) if device_id in prior else DeviceState()

        def bucket(key: str, _device: str = device_id) -> BucketAggregate:
            agg = aggregates.get((_device, key))
            if agg is None:
                agg = aggregates[(_device, key)] = BucketAggregate()
            return agg

        def on_energy(energy_wh: float, start_ms: int, end_ms: int) -> None:
            stats.energy_wh += energy_wh
            for hour_ms, share_wh in split_by_hour(energy_wh, start_ms, end_ms):
                bucket(hour_key(hour_ms)).energy_wh += share_wh
                bucket(day_key(hour_ms)).energy_wh += share_wh

        def on_flag(flag: str, ts_ms: int) -> None:
            stats.flags[flag] += 1
            for key in (hour_key(ts_ms), day_key(ts_ms)):
                agg = bucket(key)
                setattr(agg, _FLAG_FIELDS[flag], getattr(agg, _FLAG_FIELDS[flag]) + 1)

        meter = Meter(state, rules, on_energy, on_flag)
        for r in device_readings:
            stats.readings += 1
            if not state.seen.add(r.seq):
                stats.duplicates += 1
                continue
            stats.stored += 1
            bucket(hour_key(r.ts_ms)).add_sample(r.ts_ms, r.power_w)
            bucket(day_key(r.ts_ms)).add_sample(r.ts_ms, r.power_w)
            newest = state.newest
            if newest is not None and r.seq < newest.seq:
                stats.late += 1
                continue
            state.newest = Point(r.seq, r.ts_ms, r.energy_wh)
            state.newest_power_w = r.power_w
            meter.step(r)
        states[device_id] = state

    return BatchResult(aggregates, states, stats)
