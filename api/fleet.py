"""The fleet as the API lists it: the registry and the live view put together, a page at a time.

A device is known when it is registered (``sinks.registry``) or has reported (the live view,
``sinks.live``); the list is every known device by id, and a page is the next ``limit`` ids
after the cursor (the last id of the page before), so pages stay stable while devices come.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from api.series import Range, day_start_ms, read_energy
from consumer.completeness import summarise
from readings import to_rfc3339
from sinks.read import read_intervals
from sinks.registry import DEFAULT_TZ, DeviceInfo

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Today:
    """A device's day so far, in its zone."""

    energy_wh: float | None
    """None while the day has no data."""
    quality: str
    completeness_pct: float | None
    """Readings received of those expected since local midnight; None when none were expected."""


def page(ids: Iterable[str], limit: int, cursor: str | None) -> tuple[list[str], str | None]:
    """The ``limit`` ids after ``cursor`` in order, and the cursor of the next page (None: the last)."""
    ordered = sorted(set(ids))
    after = [d for d in ordered if cursor is None or d > cursor]
    taken = after[:limit]
    return taken, (taken[-1] if len(after) > limit else None)


def today(
    client: Any,
    table: str,
    device_id: str,
    tz: str,
    *,
    now_ms: int,
    last_seen_ms: int | None,
    live_groups: int,
    silence_limit_s: int,
) -> Today:
    """Energy and quality of the device's local day so far (``read_series``), and its completeness
    from the hours (``consumer.completeness``): two Queries and two GetItems of its live group."""
    start_ms = day_start_ms(now_ms, tz)
    (day,) = read_energy(client, table, device_id, Range(start_ms, start_ms + 1, "1d", tz), live_groups=live_groups)
    hours = read_intervals(
        client, table, device_id, start_ms - start_ms % HOUR_MS, now_ms + 1, "1h", live_groups=live_groups
    )
    summary = summarise(
        device_id,
        hours,
        end_ms=now_ms,
        last_seen_ms=last_seen_ms if last_seen_ms is not None and last_seen_ms <= now_ms else None,
        silence_limit_ms=silence_limit_s * 1000,
    )
    return Today(
        None if day.quality == "N" else day.energy_wh,
        day.quality,
        round(summary.percent, 1) if summary.expected else None,
    )


def alert_states(client: Any, table: str, device_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Each device's active alerts (``sinks.alerts``: one small Query per device, never a Scan)."""
    from sinks.alerts import active_alerts

    found = active_alerts(client, table, list(device_ids))
    return {device_id: [a.to_dict() for a in alerts] for device_id, alerts in found.items()}


def last_seen(live: Mapping[str, Any] | None) -> str | None:
    return None if live is None else to_rfc3339(int(live["ts_ms"]))


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_id: str
    name: str | None
    site: str | None
    tz: str
    registered: bool
    last_seen: str | None
    power_w: float | None
    today_energy_wh: float | None
    today_quality: str
    today_completeness_pct: float | None
    alerts: list[dict[str, Any]] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_row(
    device_id: str,
    info: DeviceInfo | None,
    live: Mapping[str, Any] | None,
    day: Today,
    alerts: list[dict[str, Any]] | None,
) -> DeviceRow:
    return DeviceRow(
        device_id,
        info.name if info else None,
        info.site if info else None,
        info.tz if info else DEFAULT_TZ,
        info is not None,
        last_seen(live),
        None if live is None else live["power_w"],
        day.energy_wh,
        day.quality,
        day.completeness_pct,
        alerts,
    )


@dataclass(frozen=True, slots=True)
class NowRow:
    """A device of the live view: its newest reading and its open hour."""

    device_id: str
    name: str | None
    site: str | None
    last_seen: str
    power_w: float | None
    register_wh: float | None
    hour_start: str
    hour_energy_wh: float
    hour_export_wh: float
    hour_samples: int
    alerts: list[dict[str, Any]] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def now_row(
    device_id: str, live: Mapping[str, Any], info: DeviceInfo | None, alerts: list[dict[str, Any]] | None
) -> NowRow:
    ts_ms = int(live["ts_ms"])
    return NowRow(
        device_id,
        info.name if info else None,
        info.site if info else None,
        to_rfc3339(ts_ms),
        live["power_w"],
        live["register_wh"],
        to_rfc3339(ts_ms - ts_ms % HOUR_MS),
        float(live["hour_energy_wh"]),
        float(live["hour_export_wh"]),
        int(live["hour_samples"]),
        alerts,
    )
