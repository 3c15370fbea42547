"""A device's energy over a range: the range a request means, checked, and the read behind it.

A request names its range in the device's zone (``from``/``to`` as dates or RFC 3339; by default
today, local midnight to local midnight) and a resolution (``every``; by default the finest one
that keeps a chart readable: 15 minutes for a day). A range whose intervals would number more
than ``MAX_INTERVALS`` is refused rather than read: one answer stays one bounded Query.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any, get_args

from api.errors import ApiError
from sinks.intervals import Every, parse_local
from sinks.read import Interval, read_series

EVERY: tuple[str, ...] = get_args(Every)
NOMINAL_MS = {"15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "1d": 86_400_000, "1mo": 30 * 86_400_000}
"""Each resolution's usual length, to count a range's intervals before reading them."""
MAX_INTERVALS = 10_000
DEFAULT_EVERY = (
    (2 * 86_400_000, "15m"),
    (14 * 86_400_000, "1h"),
    (400 * 86_400_000, "1d"),
)
"""(longest range, resolution): the default for a range up to that length; past the last, months."""


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_zone(tz: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``tz``, or ``ApiError`` naming it."""
    if tz not in _zones():
        raise ApiError(f"unknown time zone {tz[:60]!r} (an IANA name, e.g. Europe/Paris or UTC)")
    return zoneinfo.ZoneInfo(tz)


def day_start_ms(ts_ms: int, tz: str, days: int = 0) -> int:
    """Local midnight of the day ``ts_ms`` falls on in ``tz``, ``days`` days later."""
    where = check_zone(tz)
    day = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(where).date() + timedelta(days=days)
    return int(datetime.combine(day, time(), tzinfo=where).timestamp() * 1000)


def to_local(ts_ms: int, tz: str) -> str:
    """RFC 3339 in ``tz`` with its offset, to the second."""
    return datetime.fromtimestamp(ts_ms // 1000, tz=UTC).astimezone(check_zone(tz)).isoformat()


@dataclass(frozen=True, slots=True)
class Range:
    start_ms: int
    end_ms: int
    every: str
    tz: str

    @property
    def intervals(self) -> int:
        """How many intervals of its resolution the range holds, roughly (months as 30 days)."""
        return -(-(self.end_ms - self.start_ms) // NOMINAL_MS[self.every])


def resolve(start: str | None, end: str | None, every: str | None, tz: str, *, now_ms: int) -> Range:
    """The range a request means; ``ApiError`` for a bad zone, date, resolution or length.

    ``start`` defaults to today's local midnight (of ``now_ms``), ``end`` to the local
    midnight after ``start``'s day, ``every`` to the finest of ``DEFAULT_EVERY`` for the length.
    """
    check_zone(tz)
    if every is not None and every not in EVERY:
        raise ApiError(f"every must be one of {', '.join(EVERY)}, got {every[:20]!r}")
    start_ms = day_start_ms(now_ms, tz) if start is None else _parse(start, tz, "from")
    end_ms = day_start_ms(start_ms, tz, days=1) if end is None else _parse(end, tz, "to")
    if end_ms <= start_ms:
        raise ApiError("to must be after from")
    if every is None:
        every = next((e for longest, e in DEFAULT_EVERY if end_ms - start_ms <= longest), "1mo")
    found = Range(start_ms, end_ms, every, tz)
    if found.intervals > MAX_INTERVALS:
        raise ApiError(
            f"{found.intervals} intervals of {every} in that range (at most {MAX_INTERVALS}): "
            "a shorter range or a longer every"
        )
    return found


def _parse(text: str, tz: str, name: str) -> int:
    try:
        return parse_local(text, tz)
    except (ValueError, OverflowError) as exc:
        if "outside" in str(exc):
            raise ApiError(f"{name}: {exc}") from exc
        raise ApiError(f"{name}: {text[:40]!r} is neither a date (2026-11-27) nor RFC 3339") from exc


def read_energy(client: Any, table: str, device_id: str, found: Range, *, live_groups: int) -> list[Interval]:
    """Every interval of ``found``, with and without data, in time order (the one read the API makes)."""
    return read_series(
        client, table, device_id, found.start_ms, found.end_ms, found.every, found.tz, live_groups=live_groups
    )
