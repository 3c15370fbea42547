"""Alerts from what a shard's processor already holds: silence, high power, a day's budget, register flags.

``evaluate`` is a pure function of the batch (its records' arrival times, its readings, its
``BatchResult``), the devices' state before it and the rules, run once per flush for every
device the shard holds. Its clock is the batch's own: the approximate arrival times Kinesis gave
the records, never the wall clock, so a replayed batch fires exactly the events its first
attempt fired. Each alert fires once and clears once; what is active lives in the device's
``AlertState``, snapshotted with the shard.

- ``silent``: no record carrying a reading of the device arrived for more than the silence
  limit. The shard's clock is the newest arrival of a record with readings; the alert fires at
  the device's last arrival + the limit, as soon as the clock passes it (at a record of any
  device, or at the end of the batch), and clears at the device's next arrival. A shard that
  receives no record at all has no clock, and fires nothing until records come again.
- ``power_high``: every reading's power above the threshold for the set minutes (meter time,
  readings in the device's order; a reading without power changes nothing). Fires at the
  reading that completes the minutes, clears at the first reading at or below the threshold.
- ``budget``: the device's energy of a UTC day above its daily budget. Fires at the end of the
  15-minute quarter in which the day's energy passed the budget, clears at the day's end (when
  the device's time base passes the next UTC midnight). A day fires once; energy added to a
  day already closed (a correction) fires nothing.
- ``register``: a register flag (``reset``, ``jump``, ``export_reset``, ``export_jump``) in the
  batch's figures of an hour: one event (``fired``, no ``cleared``) per device, flag and UTC
  hour, at the hour's start; the hours fired are kept while the late window reaches them.

Where the stream is cut into batches does not change the events (the property the tests hold
it to), with two limits: a budget crossing moved by a late reading lands where the batch that
carried it saw it, and a device's own thresholds (``Limits``, the registry's) apply from the
batch after the one that loaded them, since the thresholds a batch is judged by must be the ones
its replay finds in the snapshot before it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batcher.batch import BatchResult
from batcher.buckets import QUARTER_MS, BucketAggregate, day_key
from batcher.ledger import DAY_MS, HOUR_MS, Ledger, bucket_start_ms
from batcher.state import AlertState, DeviceState, Episode
from readings.models import Reading

SILENT = "silent"
POWER_HIGH = "power_high"
BUDGET = "budget"
REGISTER = "register"
KINDS = (SILENT, POWER_HIGH, BUDGET, REGISTER)
FIRED = "fired"
CLEARED = "cleared"

REGISTER_FLAGS = {"reset": "resets", "jump": "jumps", "export_reset": "export_resets", "export_jump": "export_jumps"}
"""The flags that fire ``register``, and the ``BucketAggregate`` field counting each."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """The fleet's defaults; a device's ``Limits`` override the two thresholds."""

    silence_ms: int | None = 15 * 60_000
    """None: no silence alerts."""
    power_limit_w: float | None = None
    """None: no power alerts for devices without a threshold of their own."""
    power_ms: int = 5 * 60_000
    daily_budget_kwh: float | None = None
    """None: no budget alerts for devices without a budget of their own."""
    register: bool = True
    late_window_ms: int = 172_800_000
    """How long a register hour that fired is remembered (the batcher's late window)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A device's own thresholds (``sinks.registry.DeviceInfo``); None: the fleet's default."""

    power_limit_w: float | None = None
    daily_budget_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert firing or clearing (``at_ms`` is when: ``fired_ms`` for a ``fired`` event)."""

    device_id: str
    kind: str
    event: str
    fired_ms: int
    at_ms: int
    values: Mapping[str, Any] = field(default_factory=dict)
    flag: str | None = None
    """The register flag (``register`` only)."""

    @property
    def name(self) -> str:
        """The alert's name: its kind, and for ``register`` the flag (``register.reset``)."""
        return self.kind if self.flag is None else f"{self.kind}.{self.flag}"

    @property
    def event_id(self) -> str:
        """A function of the event alone: the same on every replay (``box-0001#silent#<ms>#fired``)."""
        return f"{self.device_id}#{self.name}#{self.fired_ms}#{self.event}"


@dataclass(slots=True)
class AlertOutcome:
    events: list[AlertEvent]
    """In the order they happened per device (silences in stream order first)."""
    states: dict[str, AlertState]
    """Every device whose alert state changed -> its alert state after the batch."""


@dataclass(slots=True)
class _Run:
    """The evaluation of one batch: the states copied on first change, the events so far."""

    prior: Mapping[str, DeviceState]
    events: list[AlertEvent] = field(default_factory=list)
    states: dict[str, AlertState] = field(default_factory=dict)

    def peek(self, device_id: str) -> AlertState | None:
        if device_id in self.states:
            return self.states[device_id]
        state = self.prior.get(device_id)
        return None if state is None else state.alerts

    def touch(self, device_id: str) -> AlertState:
        state = self.states.get(device_id)
        if state is None:
            before = self.peek(device_id)
            state = self.states[device_id] = AlertState() if before is None else before.copy()
        return state

    def fire(self, device_id: str, kind: str, fired_ms: int, values: dict[str, Any]) -> None:
        state = self.touch(device_id)
        state.active[kind] = Episode(fired_ms, values)
        self.events.append(AlertEvent(device_id, kind, FIRED, fired_ms, fired_ms, values))

    def clear(self, device_id: str, kind: str, at_ms: int, values: dict[str, Any]) -> None:
        state = self.touch(device_id)
        episode = state.active.pop(kind)
        at_ms = max(at_ms, episode.fired_ms)
        self.events.append(AlertEvent(device_id, kind, CLEARED, episode.fired_ms, at_ms, values))


def evaluate(
    arrivals: Iterable[tuple[int, Iterable[str]]],
    readings: Iterable[Reading],
    result: BatchResult,
    prior_states: Mapping[str, DeviceState],
    prior_ledgers: Mapping[str, Ledger],
    rules: AlertRules,
    limits: Mapping[str, Limits] | None = None,
) -> AlertOutcome:
    """The alert events of one batch and the alert states they leave.

    ``arrivals`` holds, per record of the batch in stream order, its arrival time and the
    devices of its readings (a record without readings is left out). ``prior_states`` and
    ``prior_ledgers`` are every device's state before the batch (``result.states`` the batch's
    devices' after it). ``limits``, when given, are every device's thresholds from now on
    (devices missing from it have none): they are stored in the states for the next batch.
    Nothing given is modified.
    """
    merged: dict[str, DeviceState] = {**prior_states, **result.states}
    run = _Run(merged)
    clock_ms = _silences(run, arrivals, merged, rules)
    by_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        by_device[r.device_id].append(r)
    hours: dict[str, list[tuple[int, BucketAggregate]]] = defaultdict(list)
    for (device_id, bucket), agg in result.aggregates.items():
        if bucket.startswith("h#"):
            hours[device_id].append((bucket_start_ms(bucket), agg))
    for device_id, state in result.states.items():
        device_hours = sorted(hours.get(device_id, ()), key=lambda hour: hour[0])
        _power(run, device_id, by_device.get(device_id, ()), rules)
        _budget(run, device_id, state, device_hours, prior_ledgers.get(device_id), rules)
        if rules.register:
            _register(run, device_id, state, device_hours, rules)
    _settle_limits(run, merged, limits, clock_ms)
    return AlertOutcome(run.events, run.states)


def _silences(
    run: _Run, arrivals: Iterable[tuple[int, Iterable[str]]], devices: Mapping[str, DeviceState], rules: AlertRules
) -> int | None:
    """Silences ended or begun by the batch; the shard's clock after it."""
    limit = rules.silence_ms
    clock_ms: int | None = None
    for device in devices.values():
        heard = None if device.alerts is None else device.alerts.heard_ms
        if heard is not None and (clock_ms is None or heard > clock_ms):
            clock_ms = heard
    for arrival_ms, device_ids in arrivals:
        clock_ms = arrival_ms if clock_ms is None else max(clock_ms, arrival_ms)
        for device_id in dict.fromkeys(device_ids):
            state = run.touch(device_id)
            heard = state.heard_ms
            if limit is not None and heard is not None and clock_ms - heard > limit and SILENT not in state.active:
                run.fire(device_id, SILENT, heard + limit, {"limit_min": limit / 60_000, "last_heard_ms": heard})
            if SILENT in state.active:
                last = state.active[SILENT].values.get("last_heard_ms", heard)
                silent_ms = arrival_ms - int(last if last is not None else arrival_ms)
                run.clear(device_id, SILENT, arrival_ms, {"minutes_silent": round(silent_ms / 60_000, 3)})
            state.heard_ms = arrival_ms if heard is None else max(heard, arrival_ms)
    if limit is None or clock_ms is None:
        return clock_ms
    for device_id in devices:
        alerts = run.peek(device_id)
        if alerts is None or alerts.heard_ms is None or SILENT in alerts.active:
            continue
        if clock_ms - alerts.heard_ms > limit:
            heard = alerts.heard_ms
            run.fire(device_id, SILENT, heard + limit, {"limit_min": limit / 60_000, "last_heard_ms": heard})
    return clock_ms


def _power(run: _Run, device_id: str, readings: Iterable[Reading], rules: AlertRules) -> None:
    before = run.peek(device_id)
    own = None if before is None else before.power_limit_w
    limit = own if own is not None else rules.power_limit_w
    if limit is None and (before is None or (before.above_ms is None and POWER_HIGH not in before.active)):
        return  # nothing to watch and nothing to clear
    state = run.touch(device_id)
    for r in readings:
        if state.power_ts_ms is not None and r.ts_ms <= state.power_ts_ms:
            continue  # a duplicate, a late reading or a clock step: the power rule follows meter time
        state.power_ts_ms = r.ts_ms
        if r.power_w is None:
            continue
        if limit is not None and r.power_w > limit:
            if state.above_ms is None:
                state.above_ms = r.ts_ms
            if POWER_HIGH not in state.active and r.ts_ms - state.above_ms >= rules.power_ms:
                values: dict[str, Any] = {
                    "power_w": r.power_w,
                    "threshold_w": limit,
                    "minutes_above": round((r.ts_ms - state.above_ms) / 60_000, 3),
                    "above_since_ms": state.above_ms,
                }
                run.fire(device_id, POWER_HIGH, r.ts_ms, values)
        else:
            if POWER_HIGH in state.active:
                since = state.active[POWER_HIGH].values.get("above_since_ms", r.ts_ms)
                values = {
                    "power_w": r.power_w,
                    "threshold_w": limit,
                    "minutes_above": round((r.ts_ms - int(since)) / 60_000, 3),
                }
                run.clear(device_id, POWER_HIGH, r.ts_ms, values)
            state.above_ms = None


def _budget(
    run: _Run,
    device_id: str,
    state: DeviceState,
    hours: list[tuple[int, BucketAggregate]],
    ledger: Ledger | None,
    rules: AlertRules,
) -> None:
    before = run.peek(device_id)
    own = None if before is None else before.daily_budget_kwh
    budget_kwh = own if own is not None else rules.daily_budget_kwh
    if budget_kwh is not None:
        closed_ms = None if ledger is None else ledger.closed_through_ms
        days: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for hour_ms, agg in hours:
            quarters = days[hour_ms - hour_ms % DAY_MS]
            if agg.quarters is None:
                quarters.append((hour_ms + HOUR_MS, agg.energy_wh))
            else:
                quarters.extend((hour_ms + (i + 1) * QUARTER_MS, q.energy_wh) for i, q in enumerate(agg.quarters))
        for day_ms, quarters in sorted(days.items()):
            current = run.peek(device_id)
            fired_day = None if current is None else current.budget_day_ms
            if fired_day is not None and day_ms <= fired_day:
                continue  # a day fires once
            if closed_ms is not None and day_ms + DAY_MS <= closed_ms:
                continue  # a correction of a closed day
            _clear_budget(run, device_id, day_ms)  # the alert of an earlier day ended with it
            open_day = None if ledger is None else ledger.open.get(day_key(day_ms))
            total_wh = 0.0 if open_day is None else open_day.energy_wh
            for end_ms, energy_wh in quarters:
                total_wh += energy_wh
                if total_wh > budget_kwh * 1000:
                    values = {"energy_kwh": round(total_wh / 1000, 6), "budget_kwh": budget_kwh, "day_ms": day_ms}
                    run.fire(device_id, BUDGET, end_ms, values)
                    run.touch(device_id).budget_day_ms = day_ms
                    break
    if state.newest is not None:
        _clear_budget(run, device_id, state.newest.ts_ms)


def _clear_budget(run: _Run, device_id: str, now_ms: int) -> None:
    """Clear the budget alert of a day that ended at or before ``now_ms``, at the day's end."""
    state = run.peek(device_id)
    if state is None or BUDGET not in state.active:
        return
    episode = state.active[BUDGET]
    day_ms = int(episode.values.get("day_ms", episode.fired_ms - episode.fired_ms % DAY_MS))
    if day_ms + DAY_MS <= now_ms:
        run.clear(
            device_id, BUDGET, day_ms + DAY_MS, {"budget_kwh": episode.values.get("budget_kwh"), "day_ms": day_ms}
        )


def _register(
    run: _Run, device_id: str, state: DeviceState, hours: list[tuple[int, BucketAggregate]], rules: AlertRules
) -> None:
    for hour_ms, agg in hours:
        for flag, counter in REGISTER_FLAGS.items():
            count = getattr(agg, counter)
            if not count:
                continue
            before = run.peek(device_id)
            if before is not None and hour_ms in before.register_hours.get(flag, ()):
                continue
            alerts = run.touch(device_id)
            bisect.insort(alerts.register_hours.setdefault(flag, []), hour_ms)
            run.events.append(
                AlertEvent(device_id, REGISTER, FIRED, hour_ms, hour_ms, {"flag": flag, "hour_ms": hour_ms}, flag)
            )
    before = run.peek(device_id)
    if before is None or not before.register_hours or state.newest is None:
        return
    oldest_ms = state.newest.ts_ms - rules.late_window_ms - HOUR_MS
    if any(hours_[0] < oldest_ms for hours_ in before.register_hours.values() if hours_):
        alerts = run.touch(device_id)
        kept = {flag: [h for h in hours_ if h >= oldest_ms] for flag, hours_ in alerts.register_hours.items()}
        alerts.register_hours = {flag: hours_ for flag, hours_ in kept.items() if hours_}


def _settle_limits(
    run: _Run, devices: Mapping[str, DeviceState], limits: Mapping[str, Limits] | None, clock_ms: int | None
) -> None:
    """Devices the alert rules see for the first time start heard now; the new thresholds are stored."""
    none = Limits()
    for device_id in devices:
        state = run.peek(device_id)
        if state is None and clock_ms is not None:
            run.touch(device_id).heard_ms = clock_ms
            state = run.peek(device_id)
        if limits is None:
            continue
        wanted = limits.get(device_id, none)
        have = (None, None) if state is None else (state.power_limit_w, state.daily_budget_kwh)
        if have != (wanted.power_limit_w, wanted.daily_budget_kwh):
            changed = run.touch(device_id)
            changed.power_limit_w, changed.daily_budget_kwh = wanted.power_limit_w, wanted.daily_budget_kwh
