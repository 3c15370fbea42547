"""Device timestamps: local times without an offset, the box's zone, and clocks that are wrong.

A reading's ``ts`` is when the meter measured it. Where a device stamps its message (Tasmota's
``Time``, emonhub's ``time``, DSMR's ``0-0:1.0.0``, Zigbee2MQTT's optional ``last_seen``) that
stamp is used, so a message that waited in a broker keeps its own time; where it does not, the
source uses the time the box received it and says so in its docstring.

A device clock can be unset (Tasmota without NTP reports 1970) or off by hours (a zone set
wrongly). A stamp further than ``max_skew_s`` from the time of receipt is not believed: the
time of receipt is used and ``meter_clock_skew`` logged.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from readings.errors import ConfigError
from readings.models import to_ts_ms

log = structlog.get_logger("device.sources")

DEFAULT_MAX_SKEW_S = 300.0


def zone(name: str | None) -> tzinfo:
    """The IANA zone ``name``, or the box's own zone when None (TZ, then /etc/localtime, else UTC)."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {name!r} (an IANA name such as Europe/Amsterdam)") from exc
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            try:
                return ZoneInfo(target.split("zoneinfo/", 1)[1])
            except (ZoneInfoNotFoundError, ValueError):
                pass
    return UTC


def local_iso_ms(text: object, tz: tzinfo) -> int | None:
    """Epoch ms of an ISO 8601 time; one without an offset is local time in ``tz``.

    In the hour that repeats when the clocks go back, a time without an offset is ambiguous; the
    first of the two instants is taken (``fold=0``). None if ``text`` is not such a time.
    """
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return to_ts_ms(moment)


def believed_ms(device_ms: int | None, received_ms: int, *, max_skew_s: float, source: str) -> int:
    """``device_ms`` if it is within ``max_skew_s`` of ``received_ms``, else ``received_ms``."""
    if device_ms is None:
        return received_ms
    if abs(device_ms - received_ms) > max_skew_s * 1000:
        log.warning("meter_clock_skew", meter=source, device_ms=device_ms, received_ms=received_ms)
        return received_ms
    return device_ms
