"""Local-time intervals summed from quarters: 15 minutes to a month, in any zone, across DST.

Every zone's offset from UTC is a whole number of quarters (India +5:30, Nepal +5:45, Chatham
+12:45), so every local 15-minute, half-hour, hour, day and month boundary is a quarter
boundary in UTC. An interval is therefore a run of whole quarters: its energy is their sum,
exactly, in any zone. A DST day has 92 or 100 quarters; the repeated hour of a fall-back
night is two intervals (told apart by their offsets), the skipped hour of a spring-forward
night is none.

The quality of an interval follows NEM12's vocabulary, from its quarters
(``batcher.completeness.quality``): ``A`` when every quarter is actual, ``N`` when none has
data, ``E`` otherwise (a quarter's energy spread across a silence, or quarters without data).
Quarters after the device's newest reading (the rest of today) do not count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from batcher.buckets import QUARTER_MS, Quarter
from batcher.completeness import quality

Every = Literal["15m", "30m", "1h", "1d", "1mo"]
EVERY: tuple[str, ...] = get_args(Every)
_REACH_MS = {"15m": 0, "30m": 30 * 60_000, "1h": 3_600_000, "1d": 26 * 3_600_000, "1mo": 32 * 86_400_000}
"""How far an interval can reach before or after an instant inside it (DST days included)."""
EARLIEST_MS, LATEST_MS = 0, 7_258_118_400_000
"""The instants a range may name: 1970 to the end of 2199 (no meter reads outside them, and
every interval around them stays within what the clock can represent)."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` naming it when the system does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse_local(text: str, tz: str) -> int:
    """Epoch ms of ``2026-03-29`` (midnight in ``tz``), a local ``2026-03-29T08:00``, or an RFC 3339
    instant with ``Z`` or an offset (taken as written)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    ms = int(value.timestamp() * 1000)
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise ValueError(f"{text[:40]!r} is outside 1970-2199")
    return ms


@dataclass(frozen=True, slots=True)
class Slot:
    """One local interval: where it starts and ends (epoch ms) and how it reads on the wall."""

    start_ms: int
    end_ms: int
    local_start: str
    """RFC 3339 with the zone's offset at the start, e.g. ``2026-10-25T02:00:00+01:00``."""


def _key(moment: datetime, every: str) -> tuple[object, ...]:
    offset = moment.utcoffset()
    if every == "1mo":
        return (moment.year, moment.month)
    if every == "1d":
        return (moment.date(),)
    minute = {"15m": moment.minute - moment.minute % 15, "30m": moment.minute - moment.minute % 30, "1h": 0}[every]
    # The offset tells the two runs of a repeated fall-back hour apart.
    return (moment.date(), moment.hour, minute, offset)


def slots(start_ms: int, end_ms: int, every: str, tz: str) -> list[Slot]:
    """The whole local intervals that overlap [start_ms, end_ms), in time order.

    An interval only partly inside the range is returned whole, so the first one may start
    before ``start_ms``: a reader gets whole days, never a day cut at the range's edge.
    """
    if every not in EVERY:
        raise ValueError(f"every must be one of {', '.join(EVERY)}")
    if end_ms <= start_ms:
        return []
    where = zone(tz)
    reach = _REACH_MS[every]
    first = start_ms - reach
    first -= first % QUARTER_MS
    last = end_ms + reach
    out: list[Slot] = []
    run_start: int | None = None
    run_key: tuple[object, ...] | None = None
    run_local = ""
    quarter = first
    while quarter <= last:
        moment = datetime.fromtimestamp(quarter / 1000, tz=UTC).astimezone(where)
        key = _key(moment, every)
        if key != run_key:
            if run_start is not None and run_start < end_ms and quarter > start_ms:
                out.append(Slot(run_start, quarter, run_local))
            run_start, run_key, run_local = quarter, key, moment.isoformat()
        quarter += QUARTER_MS
    # The runs cut by the window's edges lie wholly outside the range (the window reaches
    # farther than any interval is long), so none of them is part of the answer.
    return out


@dataclass(frozen=True, slots=True)
class Figures:
    """One interval's sums over its quarters."""

    energy_wh: float
    export_wh: float
    samples: int
    power_max_w: float | None
    silent_ms: int
    quality: str


def quarter_quality(q: Quarter | None) -> str:
    if q is None:
        return "N"
    return quality(q.samples, q.energy_wh + q.export_wh, q.silent_ms)


def sum_quarters(quarters: Mapping[int, Quarter], slot: Slot, *, data_until_ms: int | None = None) -> Figures:
    """The figures of ``slot`` from the device's quarters (by start ms); absent quarters have no data."""
    energy = export = 0.0
    samples = silent = 0
    power_max: float | None = None
    flags: set[str] = set()
    for start in range(slot.start_ms, slot.end_ms, QUARTER_MS):
        q = quarters.get(start)
        if data_until_ms is None or start <= data_until_ms:
            flags.add(quarter_quality(q))
        if q is None:
            continue
        energy += q.energy_wh
        export += q.export_wh
        samples += q.samples
        silent += q.silent_ms
        if q.power_max_w is not None and (power_max is None or q.power_max_w > power_max):
            power_max = q.power_max_w
    flag = "N" if flags <= {"N"} else "A" if flags == {"A"} else "E"
    return Figures(energy, export, samples, power_max, silent, flag)
