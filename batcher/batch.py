"""One batch's effect on the store, computed from its readings and the devices' prior state.

``compute_batch`` is a pure function: the same readings and the same prior states always give
the same result. That is what lets a replayed batch rebuild exactly the updates an interrupted
flush was writing. Each device's readings are taken one by one in stream order, everything a
reading's outcome depends on is in the device's state, so where the stream is cut into
batches never changes the result.

Per reading, against the device's newest reading (highest ``seq``):

- a higher ``seq`` is the next reading. Its time on the device's *time base* is its ``ts``, or
  the newest reading's time if ``ts`` is older: a clock stepped back (``clock_step``, flagged
  once per step) never lengthens a span, so the max-power check always sees real elapsed time
  and the base never moves backwards;
- a lower or equal ``seq`` already counted is a duplicate (``seq_conflict`` when it is the
  newest one's seq with another time or register);
- a lower ``seq`` with an older ``ts`` is late: a sample, and it re-splits the counted span it
  falls in when the device still keeps that span (``batcher.registers``), otherwise no energy;
- a lower ``seq`` with a newer ``ts`` means the box numbers from scratch (its spool was wiped):
  a **seq restart** (``seq_restart``). The device starts a new numbering; redeliveries of the
  old one (older than the restart and seen before) stay duplicates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from batcher.buckets import BucketAggregate, day_key, hour_key, split_by_hour
from batcher.registers import DeviceState, FlagSink, Point, RegisterRules, RegisterState, RegisterTracker
from batcher.seen import SeenSeqs
from readings.models import Reading


@dataclass(slots=True)
class BatchStats:
    readings: int = 0
    stored: int = 0
    """Readings counted in ``samples`` (every reading not seen before)."""
    duplicates: int = 0
    late: int = 0
    late_resplit: int = 0
    """Late readings that moved energy between intervals (the rest count as samples only)."""
    energy_wh: float = 0.0
    export_wh: float = 0.0
    flags: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(slots=True)
class BatchResult:
    aggregates: dict[tuple[str, str], BucketAggregate]
    """``(device_id, bucket)`` -> what this batch adds to that bucket."""
    states: dict[str, DeviceState]
    """Every device of the batch -> its state after the batch."""
    stats: BatchStats
    stored: dict[str, int] = field(default_factory=dict)
    """Every device of the batch -> how many of its readings were stored (not duplicates)."""


_FLAG_FIELDS = {
    "reset": "resets",
    "glitch": "glitches",
    "jump": "jumps",
    "clock_step": "clock_steps",
    "seq_restart": "seq_restarts",
    "seq_conflict": "seq_conflicts",
    "export_reset": "export_resets",
    "export_glitch": "export_glitches",
    "export_jump": "export_jumps",
}


class _Outcome(Enum):
    NEXT = "next"
    LATE = "late"
    DUPLICATE = "duplicate"


def _take(state: DeviceState, r: Reading, flag: FlagSink) -> _Outcome:
    """Place ``r`` in the device's numbering and time base (see the module docstring)."""
    newest = state.newest
    if newest is None:
        state.seen.add(r.seq)
        state.newest, state.newest_power_w = Point(r.seq, r.ts_ms, r.energy_wh), r.power_w
        return _Outcome.NEXT
    newest_raw_ts_ms = newest.ts_ms if state.newest_raw_ts_ms is None else state.newest_raw_ts_ms
    before_restart = state.epoch_ts_ms is not None and r.ts_ms < state.epoch_ts_ms
    if state.prev_seen is not None and before_restart and r.seq in state.prev_seen:
        return _Outcome.DUPLICATE  # a redelivery from before the seq restart
    if r.seq < newest.seq and r.ts_ms > newest.ts_ms:
        flag("seq_restart", r.ts_ms)
        state.prev_seen, state.seen, state.epoch_ts_ms = state.seen, SeenSeqs(), r.ts_ms
        state.seen.add(r.seq)
        # Spans of the old numbering cannot be split by readings of the new one.
        for register in (state.register, state.export):
            if register is not None:
                register.spans, register.first = [], None
    elif not state.seen.add(r.seq):
        if r.seq == newest.seq and (r.ts_ms, r.energy_wh, r.power_w) != (
            newest_raw_ts_ms,
            newest.energy_wh,
            state.newest_power_w,
        ):
            flag("seq_conflict", newest.ts_ms)
        return _Outcome.DUPLICATE
    elif r.seq < newest.seq:
        return _Outcome.LATE
    if r.ts_ms < newest_raw_ts_ms:
        flag("clock_step", newest.ts_ms)
    ts_ms = max(r.ts_ms, newest.ts_ms)
    state.newest = Point(r.seq, ts_ms, r.energy_wh)
    state.newest_raw_ts_ms = None if ts_ms == r.ts_ms else r.ts_ms
    state.newest_power_w = r.power_w
    return _Outcome.NEXT


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
    stored: dict[str, int] = {}
    stats = BatchStats()

    for device_id, device_readings in by_device.items():
        state = prior[device_id].copy() if device_id in prior else DeviceState()

        def bucket(key: str, _device: str = device_id) -> BucketAggregate:
            agg = aggregates.get((_device, key))
            if agg is None:
                agg = aggregates[(_device, key)] = BucketAggregate()
            return agg

        def on_energy(energy_wh: float, start_ms: int, end_ms: int) -> None:
            stats.energy_wh += energy_wh
            on_moved(energy_wh, start_ms, end_ms)

        def on_moved(energy_wh: float, start_ms: int, end_ms: int) -> None:
            for hour_ms, share_wh in split_by_hour(energy_wh, start_ms, end_ms):
                bucket(hour_key(hour_ms)).energy_wh += share_wh
                bucket(day_key(hour_ms)).energy_wh += share_wh

        def on_export(energy_wh: float, start_ms: int, end_ms: int) -> None:
            stats.export_wh += energy_wh
            on_export_moved(energy_wh, start_ms, end_ms)

        def on_export_moved(energy_wh: float, start_ms: int, end_ms: int) -> None:
            for hour_ms, share_wh in split_by_hour(energy_wh, start_ms, end_ms):
                bucket(hour_key(hour_ms)).export_wh += share_wh
                bucket(day_key(hour_ms)).export_wh += share_wh

        def on_flag(flag: str, ts_ms: int) -> None:
            stats.flags[flag] += 1
            for key in (hour_key(ts_ms), day_key(ts_ms)):
                agg = bucket(key)
                setattr(agg, _FLAG_FIELDS[flag], getattr(agg, _FLAG_FIELDS[flag]) + 1)

        def on_export_flag(flag: str, ts_ms: int) -> None:
            on_flag(f"export_{flag}", ts_ms)

        def on_sample(ts_ms: int, power_w: float | None) -> None:
            bucket(hour_key(ts_ms)).add_sample(ts_ms, power_w)
            bucket(day_key(ts_ms)).add_sample(ts_ms, power_w)

        meter = RegisterTracker(state.register, state.seen, rules, on_energy, on_flag, on_moved)
        exporter: RegisterTracker | None = None
        stored_before = stats.stored
        for r in device_readings:
            stats.readings += 1
            outcome = _take(state, r, on_flag)
            if outcome is _Outcome.DUPLICATE:
                stats.duplicates += 1
                continue
            stats.stored += 1
            # A seq restart gives the device a new seen set: the trackers follow it.
            meter.seen = state.seen
            if r.energy_export_wh is not None and state.export is None:
                state.export = RegisterState()
            if state.export is not None and (exporter is None or exporter.state is not state.export):
                exporter = RegisterTracker(state.export, state.seen, rules, on_export, on_export_flag, on_export_moved)
            if exporter is not None:
                exporter.seen = state.seen
            if outcome is _Outcome.LATE:
                stats.late += 1
                on_sample(r.ts_ms, r.power_w)
                moved = meter.late(Point(r.seq, r.ts_ms, r.energy_wh))
                if exporter is not None and r.energy_export_wh is not None:
                    moved = exporter.late(Point(r.seq, r.ts_ms, r.energy_export_wh)) or moved
                stats.late_resplit += moved
                continue
            newest = state.newest
            assert newest is not None
            on_sample(newest.ts_ms, r.power_w)
            meter.step(Point(r.seq, newest.ts_ms, r.energy_wh))
            if exporter is not None and r.energy_export_wh is not None:
                exporter.step(Point(r.seq, newest.ts_ms, r.energy_export_wh))
        states[device_id] = state
        stored[device_id] = stats.stored - stored_before

    return BatchResult(aggregates, states, stats, stored)
