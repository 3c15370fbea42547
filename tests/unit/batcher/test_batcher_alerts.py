"""The alert rules (``batcher.alerts``): each alert fires once and clears once, whatever the batches.

Records are ``(arrival_ms, readings)``; ``drive`` cuts them into batches and carries every
device's state and ledger from one batch to the next through the snapshot's JSON, as the
consumer does. Expected times are written by hand from the rules in the module docstring.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import DeviceState, compute_batch
from batcher.alerts import (
    BUDGET,
    CLEARED,
    FIRED,
    POWER_HIGH,
    REGISTER,
    SILENT,
    AlertEvent,
    AlertRules,
    Limits,
    evaluate,
)
from batcher.ledger import Ledger, settle
from readings.models import Reading
from tests.unit.batcher.conftest import RULES, at

MIN = 60_000
A, B = "box-0001", "box-0002"
Record = tuple[int, list[Reading]]


def reading(device: str, seq: int, ts_ms: int, energy_wh: float, power_w: float | None = None) -> Reading:
    return Reading(device_id=device, seq=seq, ts_ms=ts_ms, energy_wh=energy_wh, power_w=power_w)


@dataclasses.dataclass
class Shard:
    """What a shard's processor carries between batches, as its snapshot reloads it."""

    states: dict[str, DeviceState] = dataclasses.field(default_factory=dict)
    ledgers: dict[str, Ledger] = dataclasses.field(default_factory=dict)

    def run(
        self, batch: Sequence[Record], rules: AlertRules, limits: Mapping[str, Limits] | None = None
    ) -> list[AlertEvent]:
        readings = [r for _, rs in batch for r in rs]
        result = compute_batch(readings, self.states, RULES)
        settled = settle(result, self.ledgers)
        arrivals = [(arrival, [r.device_id for r in rs]) for arrival, rs in batch if rs]
        outcome = evaluate(arrivals, readings, result, self.states, self.ledgers, rules, limits)
        states = {**self.states, **result.states}
        for device_id, alerts in outcome.states.items():
            states[device_id] = dataclasses.replace(states[device_id], alerts=alerts)
        self.states = {d: DeviceState.from_dict(json.loads(json.dumps(s.to_dict()))) for d, s in states.items()}
        ledgers = {**self.ledgers, **settled.ledgers}
        self.ledgers = {d: Ledger.from_dict(json.loads(json.dumps(x.to_dict()))) for d, x in ledgers.items()}
        return outcome.events


def drive(
    records: Sequence[Record], cuts: Sequence[int], rules: AlertRules, limits: Mapping[str, Limits] | None = None
) -> list[AlertEvent]:
    """Every event of the records cut into batches before each index in ``cuts``."""
    shard = Shard()
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(records))), len(records)]
    events: list[AlertEvent] = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        events += shard.run(records[lo:hi], rules, limits)
    return events


def merged(*streams: list[Record]) -> list[Record]:
    """The records of several devices in arrival order (a device's own order kept)."""
    return sorted((r for stream in streams for r in stream), key=lambda record: record[0])


def brief(events: list[AlertEvent]) -> list[tuple[str, str, str, int, int]]:
    return [(e.device_id, e.name, e.event, e.fired_ms, e.at_ms) for e in events]


def every_minute(device: str, start_ms: int, count: int, *, first_seq: int = 1, power_w: float | None = None) -> list:
    """One record a minute, each one reading taken a second before its arrival, 10 Wh apart."""
    return [
        (
            start_ms + k * MIN,
            [reading(device, first_seq + k, start_ms + k * MIN - 1000, 10.0 * (first_seq + k), power_w)],
        )
        for k in range(count)
    ]


T0 = at("13:00")
SILENCE = AlertRules(silence_ms=15 * MIN, register=False)


# -- silent ------------------------------------------------------------------------------------


def test_a_silent_device_fires_once_at_its_last_arrival_plus_the_limit_and_clears_when_heard() -> None:
    # A reports every minute throughout; B stops after 13:02 and is heard again at 13:40.
    records = merged(every_minute(A, T0, 45), every_minute(B, T0, 3), every_minute(B, T0 + 40 * MIN, 1, first_seq=9))
    for cuts in ([], [10], list(range(1, len(records))), [19, 20, 21, 50]):
        assert brief(drive(records, cuts, SILENCE)) == [
            (B, SILENT, FIRED, T0 + 2 * MIN + 15 * MIN, T0 + 17 * MIN),
            (B, SILENT, CLEARED, T0 + 17 * MIN, T0 + 40 * MIN),
        ], cuts


def test_a_silence_is_noticed_by_any_record_of_the_shard_and_fires_only_once() -> None:
    records = merged(every_minute(A, T0, 40), every_minute(B, T0, 1))
    shard = Shard()
    fired = [e for k in range(0, 40, 5) for e in shard.run(records[k + (k > 0) : k + 6], SILENCE)]
    assert brief(fired) == [(B, SILENT, FIRED, T0 + 15 * MIN, T0 + 15 * MIN)]
    assert fired[0].values == {"limit_min": 15.0, "last_heard_ms": T0}
    assert SILENT in shard.states[B].alerts.active  # type: ignore[union-attr]


def test_a_device_is_not_silent_within_the_limit() -> None:
    records = merged(every_minute(A, T0, 30), [(T0 + 15 * MIN, [reading(B, 1, T0, 1.0)])])
    records += [(T0 + 30 * MIN, [reading(B, 2, T0 + 29 * MIN, 2.0)])]
    assert drive(records, [], SILENCE) == []


def test_silence_alerts_are_off_without_a_limit() -> None:
    records = merged(every_minute(A, T0, 60), every_minute(B, T0, 1))
    assert drive(records, [7, 30], AlertRules(silence_ms=None, register=False)) == []


# -- power_high --------------------------------------------------------------------------------

POWER = AlertRules(silence_ms=None, power_limit_w=1000.0, power_ms=5 * MIN, register=False)


def powers(device: str, values: list[float | None], start_ms: int = T0) -> list[Record]:
    return [
        (start_ms + k * MIN + 500, [reading(device, k + 1, start_ms + k * MIN, 10.0 * k, p)])
        for k, p in enumerate(values)
    ]


def test_power_above_the_threshold_for_the_minutes_fires_once_and_clears_once() -> None:
    # Above from 13:02; 13:07 completes five minutes; 13:10 is back at the threshold.
    records = powers(A, [500, 900, 1500, 1200, None, 2000, 1100, 1300, 1500, 1800, 1000, 1500])
    for cuts in ([], [3], [7, 8], list(range(12))):
        events = drive(records, cuts, POWER)
        assert brief(events) == [
            (A, POWER_HIGH, FIRED, T0 + 7 * MIN, T0 + 7 * MIN),
            (A, POWER_HIGH, CLEARED, T0 + 7 * MIN, T0 + 10 * MIN),
        ], cuts
        assert events[0].values == {
            "power_w": 1300,
            "threshold_w": 1000.0,
            "minutes_above": 5.0,
            "above_since_ms": T0 + 2 * MIN,
        }


def test_a_dip_restarts_the_minutes_and_a_short_peak_fires_nothing() -> None:
    assert drive(powers(A, [1500, 1500, 1500, 1500, 900, 1500, 1500, 1500, 1500, 1500]), [], POWER) == []


def test_a_device_threshold_applies_from_the_batch_after_it_was_loaded() -> None:
    records = merged(powers(A, [700] * 20), powers(B, [700] * 20))
    limits = {A: Limits(power_limit_w=600.0)}
    events = drive(records, [2], POWER, limits)
    # A's own threshold (600 W) is stored with the first batch and judges from the second (13:01):
    # five minutes above it end at 13:06. B keeps the fleet's 1000 W.
    assert brief(events) == [(A, POWER_HIGH, FIRED, T0 + 6 * MIN, T0 + 6 * MIN)]
    assert events[0].values["threshold_w"] == 600.0


def test_a_threshold_removed_clears_the_alert_at_the_next_reading() -> None:
    records = powers(A, [1500] * 10)
    shard = Shard()
    assert [e.event for e in shard.run(records[:7], POWER)] == [FIRED]
    later = shard.run(records[7:9], dataclasses.replace(POWER, power_limit_w=None))
    assert brief(later) == [(A, POWER_HIGH, CLEARED, T0 + 5 * MIN, T0 + 7 * MIN)]


# -- budget --------------------------------------------------------------------------------------

BUDGET_RULES = AlertRules(silence_ms=None, daily_budget_kwh=1.0, register=False)


def test_the_day_budget_fires_at_the_end_of_the_quarter_it_was_passed_in_and_clears_at_midnight() -> None:
    # 100 Wh every 6 minutes from 22:00: 1 kWh is reached at 23:00 and passed at 23:06 (the
    # quarter 23:00-23:15); midnight is passed at 00:06 the next day. The energy reported is the
    # day's by the end of that quarter as far as the batch that fired knew it.
    start = at("22:00")
    records = [(start + k * 6 * MIN + 100, [reading(A, k + 1, start + k * 6 * MIN, 100.0 * k)]) for k in range(22)]
    for cuts in ([], [11], [12], list(range(22))):
        events = drive(records, cuts, BUDGET_RULES)
        assert brief(events) == [
            (A, BUDGET, FIRED, at("23:15"), at("23:15")),
            (A, BUDGET, CLEARED, at("23:15"), at("2026-11-28T00:00")),
        ], cuts
        # A batch that ends at 23:06 knew 1.1 kWh by the end of the quarter; one past 23:15, 1.25.
        energy_kwh = 1.25 if cuts in ([], [11]) else 1.1
        assert events[0].values == {"energy_kwh": energy_kwh, "budget_kwh": 1.0, "day_ms": at("00:00")}


def test_a_device_budget_overrides_the_fleet_default() -> None:
    start = at("10:00")
    records = [(start + k * MIN, [reading(A, k + 1, start + k * MIN, 50.0 * k)]) for k in range(30)]
    rules = dataclasses.replace(BUDGET_RULES, daily_budget_kwh=None)
    assert drive(records, [1], rules) == []
    events = drive(records, [1], rules, {A: Limits(daily_budget_kwh=0.5)})
    assert brief(events) == [(A, BUDGET, FIRED, at("10:15"), at("10:15"))]


# -- register ----------------------------------------------------------------------------------


def test_a_register_reset_fires_one_event_per_hour_and_flag() -> None:
    rules = AlertRules(silence_ms=None)
    energies = [1000, 1010, 5, 15, 25, 3, 13]  # two resets in 13:00-14:00
    records = [(T0 + k * MIN, [reading(A, k + 1, T0 + k * MIN, e)]) for k, e in enumerate(energies)]
    # Another one at 14:10 (a decrease is a reset once the next reading rises from it).
    records += [(T0 + (70 + k) * MIN, [reading(A, 8 + k, T0 + (70 + k) * MIN, 1.0 + k)]) for k in range(2)]
    for cuts in ([], [3], [2, 3, 4, 5, 6, 7, 8]):
        events = drive(records, cuts, rules)
        assert brief(events) == [
            (A, "register.reset", FIRED, T0, T0),
            (A, "register.reset", FIRED, at("14:00"), at("14:00")),
        ], cuts
        assert events[0].kind == REGISTER and events[0].values == {"flag": "reset", "hour_ms": T0}


# -- replay and batch boundaries -----------------------------------------------------------------


def test_the_same_batch_on_the_same_state_fires_the_same_events_and_changes_nothing_given() -> None:
    records = merged(every_minute(A, T0, 40, power_w=1500.0), every_minute(B, T0, 2))
    shard = Shard()
    shard.run(records[:4], POWER)
    before = json.dumps({d: s.to_dict() for d, s in shard.states.items()}, sort_keys=True)
    replay = Shard(dict(shard.states), dict(shard.ledgers))
    rules = dataclasses.replace(POWER, silence_ms=15 * MIN)
    first = shard.run(records[4:], rules)
    assert json.dumps({d: s.to_dict() for d, s in replay.states.items()}, sort_keys=True) == before
    again = replay.run(records[4:], rules)
    assert first == again and {e.kind for e in first} == {SILENT, POWER_HIGH}


def _stream(draw: st.DrawFn) -> list[Record]:
    """Three devices' records, arriving in order with gaps up to 40 minutes, readings in order."""
    devices = {d: {"seq": 0, "energy": draw(st.floats(0, 1e5)), "ts": at("21:00")} for d in (A, B, "box-0003")}
    arrival = at("21:00")
    records: list[Record] = []
    for _ in range(draw(st.integers(1, 60))):
        arrival += draw(st.sampled_from([0, 1000, MIN, 3 * MIN, 10 * MIN, 20 * MIN, 40 * MIN]))
        device = draw(st.sampled_from(sorted(devices)))
        d = devices[device]
        readings = []
        for _ in range(draw(st.integers(1, 3))):
            d["seq"] += 1
            d["ts"] = max(d["ts"] + draw(st.sampled_from([10_000, MIN, 5 * MIN])), d["ts"])
            move = draw(st.sampled_from(["rise", "rise", "rise", "reset"]))
            d["energy"] = draw(st.floats(0, 5)) if move == "reset" else d["energy"] + draw(st.floats(0, 300))
            power = draw(st.one_of(st.none(), st.sampled_from([200.0, 999.0, 1000.0, 1001.0, 3000.0])))
            readings.append(reading(device, d["seq"], min(d["ts"], arrival), d["energy"], power))
            d["ts"] = min(d["ts"], arrival)
        records.append((arrival, readings))
    return records


def comparable(event: AlertEvent) -> tuple:
    """The event but a budget's energy, which is the day's as far as the batch that fired knew it."""
    values = {k: v for k, v in event.values.items() if not (event.kind == BUDGET and k == "energy_kwh")}
    return (event.event_id, event.at_ms, sorted(values.items()))


ALL = AlertRules(silence_ms=15 * MIN, power_limit_w=1000.0, power_ms=5 * MIN, daily_budget_kwh=0.5)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_cut_of_the_same_records_into_batches_fires_the_same_events(data: st.DataObject) -> None:
    records = data.draw(st.composite(lambda draw: _stream(draw))())
    cuts = data.draw(st.lists(st.integers(1, max(1, len(records) - 1)), max_size=len(records)))
    whole = drive(records, [], ALL)
    cut = drive(records, cuts, ALL)
    assert sorted(map(comparable, cut)) == sorted(map(comparable, whole))
    # Each alert alternates fired, cleared, fired, ... and a one-shot never clears.
    by_alert: dict[tuple[str, str], list[str]] = {}
    for event in whole:
        by_alert.setdefault((event.device_id, event.name), []).append(event.event)
    for (_, name), seen in by_alert.items():
        if name.startswith(REGISTER):
            assert set(seen) == {FIRED}
        else:
            assert seen == [FIRED, CLEARED] * (len(seen) // 2) + [FIRED] * (len(seen) % 2), seen
