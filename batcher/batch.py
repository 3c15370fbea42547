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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from batcher.buckets import (
    BucketAggregate,
    day_key,
    hour_key,
    overlaps_by_quarter,
    split_by_quarter,
)
from batcher.completeness import MAX_GAPS, Gap, learn_cadence, spread, step
from batcher.registers import FlagSink, RegisterRules, RegisterTracker
from batcher.seen import SeenSeqs
from batcher.state import DeviceState, Point, RegisterState
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
    seq_gaps: int = 0
    """Seqs found missing between consecutive readings."""
    seq_gaps_filled: int = 0
    """Missing seqs a late reading filled."""
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


StepSink = Callable[[Gap, int], None]
"""Receives a step and +1 to spread its figures, or -1 to take them back."""


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
        state.head = (r.seq, r.ts_ms)
        return _Outcome.NEXT
    newest_raw_ts_ms = newest.ts_ms if state.newest_raw_ts_ms is None else state.newest_raw_ts_ms
    before_restart = state.epoch_ts_ms is not None and r.ts_ms < state.epoch_ts_ms
    if state.prev_seen is not None and before_restart and r.seq in state.prev_seen:
        return _Outcome.DUPLICATE  # a redelivery from before the seq restart
    if r.seq < newest.seq and r.ts_ms > newest.ts_ms:
        flag("seq_restart", r.ts_ms)
        state.prev_seen, state.seen, state.epoch_ts_ms = state.seen, SeenSeqs(), r.ts_ms
        state.seen.add(r.seq)
        # Spans and gaps of the old numbering cannot be split by readings of the new one.
        state.gaps, state.head = [], (r.seq, r.ts_ms)
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


def _step(state: DeviceState, before: Point, newest: Point, rules: RegisterRules, on_step: StepSink) -> int:
    """Spread the step from the previous newest reading; the seq gaps it found."""
    spacing_ms = newest.ts_ms - before.ts_ms
    found = 0
    if newest.seq != before.seq + 1 or spacing_ms > rules.silence_limit_ms:
        # Not the next seq soon after the last one (the common case, which spreads nothing).
        restarted = newest.seq < before.seq  # a new numbering: no seq gap across it
        start_seq = newest.seq - 1 if restarted else before.seq
        gap = step(start_seq, before.ts_ms, newest.seq, newest.ts_ms, state.cadence_ms, rules.silence_limit_ms)
        on_step(gap, 1)
        found = gap.seq_gaps
    elif spacing_ms > 0:
        # The cadence is learnt from consecutive seqs that are not a silence.
        state.cadence_ms = learn_cadence(state.cadence_ms, spacing_ms)
    oldest = newest.ts_ms - rules.late_window_ms
    if state.gaps:
        state.gaps = [g for g in state.gaps if g.end_ms >= oldest and state.seen.has_gap(g.start_seq, g.end_seq)]
    if state.head is not None and state.head[1] < oldest:
        state.head = None
    if found:
        state.gaps = [*state.gaps, gap][-MAX_GAPS:]
    return found


def _fill(state: DeviceState, r: Reading, rules: RegisterRules, on_step: StepSink) -> tuple[int, int]:
    """A late reading fills a seq of a kept step: the step's figures give way to its halves'.

    ``(seq gaps found, seq gaps filled)``.
    """
    index = next((i for i, g in enumerate(state.gaps) if g.start_seq < r.seq < g.end_seq), None)
    if index is None:
        if state.head is not None and r.seq < state.head[0] and r.ts_ms <= state.head[1]:
            # Before the first reading: a step to it, and the new first reading.
            head_seq, head_ms = state.head
            first = step(r.seq, r.ts_ms, head_seq, head_ms, state.cadence_ms, rules.silence_limit_ms)
            on_step(first, 1)
            if first.seq_gaps:
                state.gaps = [first, *state.gaps][:MAX_GAPS]
            state.head = (r.seq, r.ts_ms)
            return first.seq_gaps, 0
        return 0, 0
    gap = state.gaps[index]
    ts_ms = min(max(r.ts_ms, gap.start_ms), gap.end_ms)
    limit = rules.silence_limit_ms
    halves = [
        step(gap.start_seq, gap.start_ms, r.seq, ts_ms, gap.cadence_ms, limit),
        step(r.seq, ts_ms, gap.end_seq, gap.end_ms, gap.cadence_ms, limit),
    ]
    on_step(gap, -1)
    for half in halves:
        on_step(half, 1)
    state.gaps[index : index + 1] = [h for h in halves if h.seq_gaps]
    return 0, gap.seq_gaps - sum(h.seq_gaps for h in halves)


class _DeviceRun:
    """One device's readings of one batch: its state, its buckets and the sinks its rules report to.

    Bound methods instead of closures per device: most devices of a batch take only the common
    step (``_common_steps``), which needs none of the sinks, and the trackers are built at the
    device's first reading off it.
    """

    __slots__ = ("aggregates", "day", "device_id", "exporter", "hour", "hour_ms", "meter", "rules", "state", "stats")

    def __init__(
        self,
        device_id: str,
        state: DeviceState,
        aggregates: dict[tuple[str, str], BucketAggregate],
        stats: BatchStats,
        rules: RegisterRules,
    ) -> None:
        self.device_id = device_id
        self.state = state
        self.aggregates = aggregates
        self.stats = stats
        self.rules = rules
        self.meter: RegisterTracker | None = None
        self.exporter: RegisterTracker | None = None
        self.hour_ms = -1
        """The hour of the common step's last sample, whose buckets ``hour`` and ``day`` are."""
        self.hour: BucketAggregate | None = None
        self.day: BucketAggregate | None = None

    def bucket(self, key: str) -> BucketAggregate:
        at = (self.device_id, key)
        agg = self.aggregates.get(at)
        if agg is None:
            agg = self.aggregates[at] = BucketAggregate.for_bucket(key)
        return agg

    def on_energy(self, energy_wh: float, start_ms: int, end_ms: int) -> None:
        self.stats.energy_wh += energy_wh
        self.on_moved(energy_wh, start_ms, end_ms)

    def on_moved(self, energy_wh: float, start_ms: int, end_ms: int) -> None:
        for quarter_ms, share_wh in split_by_quarter(energy_wh, start_ms, end_ms):
            hour = self.bucket(hour_key(quarter_ms))
            hour.energy_wh += share_wh
            hour.quarter(quarter_ms).energy_wh += share_wh
            self.bucket(day_key(quarter_ms)).energy_wh += share_wh

    def on_export(self, energy_wh: float, start_ms: int, end_ms: int) -> None:
        self.stats.export_wh += energy_wh
        self.on_export_moved(energy_wh, start_ms, end_ms)

    def on_export_moved(self, energy_wh: float, start_ms: int, end_ms: int) -> None:
        for quarter_ms, share_wh in split_by_quarter(energy_wh, start_ms, end_ms):
            hour = self.bucket(hour_key(quarter_ms))
            hour.export_wh += share_wh
            hour.quarter(quarter_ms).export_wh += share_wh
            self.bucket(day_key(quarter_ms)).export_wh += share_wh

    def on_flag(self, flag: str, ts_ms: int) -> None:
        self.stats.flags[flag] += 1
        for key in (hour_key(ts_ms), day_key(ts_ms)):
            agg = self.bucket(key)
            setattr(agg, _FLAG_FIELDS[flag], getattr(agg, _FLAG_FIELDS[flag]) + 1)

    def on_export_flag(self, flag: str, ts_ms: int) -> None:
        self.on_flag(f"export_{flag}", ts_ms)

    def on_sample(self, ts_ms: int, power_w: float | None) -> None:
        self.bucket(hour_key(ts_ms)).add_sample(ts_ms, power_w)
        self.bucket(day_key(ts_ms)).add_sample(ts_ms, power_w)

    def on_step(self, gap: Gap, sign: int) -> None:
        for hour_ms, seq_gaps, missing, silent_ms in spread(gap):
            for key in (hour_key(hour_ms), day_key(hour_ms)):
                agg = self.bucket(key)
                agg.seq_gaps += sign * seq_gaps
                agg.missing += sign * missing
                agg.silent_ms += sign * silent_ms
        if gap.silent:
            for quarter_ms, silent_ms in overlaps_by_quarter(gap.start_ms, gap.end_ms):
                self.bucket(hour_key(quarter_ms)).quarter(quarter_ms).silent_ms += sign * silent_ms

    def take(self, r: Reading) -> None:
        """One reading by every rule (the module docstring): numbering, steps, registers."""
        state, stats, rules = self.state, self.stats, self.rules
        if self.meter is None:
            self.meter = RegisterTracker(state.register, state.seen, rules, self.on_energy, self.on_flag, self.on_moved)
        meter = self.meter
        before = state.newest
        outcome = _take(state, r, self.on_flag)
        if outcome is _Outcome.DUPLICATE:
            stats.duplicates += 1
            return
        stats.stored += 1
        # A seq restart gives the device a new seen set: the trackers follow it.
        meter.seen = state.seen
        if r.energy_export_wh is not None and state.export is None:
            state.export = RegisterState()
        exporter = self.exporter
        if state.export is not None and (exporter is None or exporter.state is not state.export):
            exporter = self.exporter = RegisterTracker(
                state.export, state.seen, rules, self.on_export, self.on_export_flag, self.on_export_moved
            )
        if exporter is not None:
            exporter.seen = state.seen
        if outcome is _Outcome.LATE:
            stats.late += 1
            self.on_sample(r.ts_ms, r.power_w)
            moved = meter.late(Point(r.seq, r.ts_ms, r.energy_wh))
            if exporter is not None and r.energy_export_wh is not None:
                moved = exporter.late(Point(r.seq, r.ts_ms, r.energy_export_wh)) or moved
            stats.late_resplit += moved
            found, filled = _fill(state, r, rules, self.on_step)
            stats.seq_gaps += found
            stats.seq_gaps_filled += filled
            return
        newest = state.newest
        assert newest is not None
        if before is not None:
            stats.seq_gaps += _step(state, before, newest, rules, self.on_step)
        self.on_sample(newest.ts_ms, r.power_w)
        meter.step(Point(r.seq, newest.ts_ms, r.energy_wh))
        if exporter is not None and r.energy_export_wh is not None:
            exporter.step(Point(r.seq, newest.ts_ms, r.energy_export_wh))


def _general_rules_only(run: _DeviceRun, readings: list[Reading], index: int) -> int:
    return index


def _copy_state(state: DeviceState) -> DeviceState:
    return state.copy()


try:
    from batcher._steps import common_steps as _common_steps
    from batcher._steps import copy_state as _copy_state
except ImportError:  # pragma: no cover - a build without a C compiler
    _common_steps = _general_rules_only

COMPILED = _common_steps is not _general_rules_only
"""Whether the common step is compiled (``batcher/_steps.pyx``: in every image and wheel built
with a C compiler). Without it every reading takes the general rules: slower, the same result."""


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
        state = _copy_state(prior[device_id]) if device_id in prior else DeviceState()
        run = _DeviceRun(device_id, state, aggregates, stats, rules)
        stats.readings += len(device_readings)
        stored_before = stats.stored
        index, n = 0, len(device_readings)
        while index < n:
            index = _common_steps(run, device_readings, index)
            if index < n:
                run.take(device_readings[index])
                index += 1
        states[device_id] = state
        stored[device_id] = stats.stored - stored_before

    return BatchResult(aggregates, states, stats, stored)
