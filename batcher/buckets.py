"""Hourly and daily aggregates of one device, and how energy is split across them.

Bucket keys are UTC: ``h#2026-11-27T13`` and ``d#2026-11-27``. An energy delta measured
between two readings is split across the buckets in proportion to the time each bucket covers
of the interval between them; the daily buckets get the very same pieces as the hourly ones,
so the sum over hours equals the sum over days.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

HOUR_MS = 3_600_000

FLAG_COUNTERS = frozenset(
    {
        "resets",
        "glitches",
        "jumps",
        "clock_steps",
        "seq_restarts",
        "seq_conflicts",
        "export_resets",
        "export_glitches",
        "export_jumps",
    }
)
"""Counters of register and numbering anomalies; absent from an item means zero."""
SPARSE = FLAG_COUNTERS | {"export_wh", "seq_gaps", "missing", "silent_ms"}
"""Figures written only once they are not zero (most devices export nothing)."""

HOURLY = "h"
DAILY = "d"


DAY_MS = 86_400_000


@lru_cache(maxsize=65_536)
def _hour_text(hour_ms: int) -> str:
    return "h#" + datetime.fromtimestamp(hour_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H")


@lru_cache(maxsize=8_192)
def _day_text(day_ms: int) -> str:
    return "d#" + datetime.fromtimestamp(day_ms // 1000, tz=UTC).strftime("%Y-%m-%d")


def hour_key(ts_ms: int) -> str:
    # Formatted once per hour, not per reading: the key is a function of the hour's start.
    return _hour_text(ts_ms - ts_ms % HOUR_MS)


def day_key(ts_ms: int) -> str:
    return _day_text(ts_ms - ts_ms % DAY_MS)


def split_by_hour(energy_wh: float, start_ms: int, end_ms: int) -> Iterator[tuple[int, float]]:
    """``(hour_start_ms, share_wh)`` pieces of ``energy_wh`` spread evenly over [start, end].

    An empty or backwards interval puts everything in the hour of ``end_ms``.
    """
    if end_ms <= start_ms:
        yield end_ms - end_ms % HOUR_MS, energy_wh
        return
    span = end_ms - start_ms
    hour = start_ms - start_ms % HOUR_MS
    given = 0.0
    while hour < end_ms:
        nxt = hour + HOUR_MS
        if nxt >= end_ms:
            # The last piece takes the remainder so the pieces add up to the delta exactly.
            yield hour, energy_wh - given
            return
        share = energy_wh * (nxt - max(hour, start_ms)) / span
        given += share
        yield hour, share
        hour = nxt


@dataclass(slots=True)
class BucketAggregate:
    """One device's figures for one bucket. ``power_sum_w / power_samples`` is the mean power."""

    energy_wh: float = 0.0
    samples: int = 0
    power_samples: int = 0
    power_sum_w: float = 0.0
    power_max_w: float | None = None
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    resets: int = 0
    glitches: int = 0
    jumps: int = 0
    clock_steps: int = 0
    seq_restarts: int = 0
    seq_conflicts: int = 0
    export_wh: float = 0.0
    """Energy on the export register (OBIS 2.8.0); the import register's is ``energy_wh``."""
    export_resets: int = 0
    export_glitches: int = 0
    export_jumps: int = 0
    seq_gaps: int = 0
    """Seqs of the device's readings in this interval that never arrived (``batcher.completeness``)."""
    missing: int = 0
    """Readings the interval should have had and did not get; expected = samples + missing."""
    silent_ms: int = 0
    """Time of the interval inside steps longer than the silence limit (its energy is estimated)."""

    def add_sample(self, ts_ms: int, power_w: float | None) -> None:
        self.samples += 1
        self.first_ts_ms = ts_ms if self.first_ts_ms is None else min(self.first_ts_ms, ts_ms)
        self.last_ts_ms = ts_ms if self.last_ts_ms is None else max(self.last_ts_ms, ts_ms)
        if power_w is not None:
            self.power_samples += 1
            self.power_sum_w += power_w
            self.power_max_w = power_w if self.power_max_w is None else max(self.power_max_w, power_w)

    def merge(self, other: BucketAggregate) -> BucketAggregate:
        """A new aggregate holding both; neither operand changes."""

        def pick(a: Any, b: Any, fn: Any) -> Any:
            return b if a is None else a if b is None else fn(a, b)

        return BucketAggregate(
            energy_wh=self.energy_wh + other.energy_wh,
            samples=self.samples + other.samples,
            power_samples=self.power_samples + other.power_samples,
            power_sum_w=self.power_sum_w + other.power_sum_w,
            power_max_w=pick(self.power_max_w, other.power_max_w, max),
            first_ts_ms=pick(self.first_ts_ms, other.first_ts_ms, min),
            last_ts_ms=pick(self.last_ts_ms, other.last_ts_ms, max),
            resets=self.resets + other.resets,
            glitches=self.glitches + other.glitches,
            jumps=self.jumps + other.jumps,
            clock_steps=self.clock_steps + other.clock_steps,
            seq_restarts=self.seq_restarts + other.seq_restarts,
            seq_conflicts=self.seq_conflicts + other.seq_conflicts,
            export_wh=self.export_wh + other.export_wh,
            export_resets=self.export_resets + other.export_resets,
            export_glitches=self.export_glitches + other.export_glitches,
            export_jumps=self.export_jumps + other.export_jumps,
            seq_gaps=self.seq_gaps + other.seq_gaps,
            missing=self.missing + other.missing,
            silent_ms=self.silent_ms + other.silent_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        # The anomaly counters and the export are written once they are not zero: most
        # buckets have none.
        return {
            name: value
            for name in _FIELD_NAMES
            if (value := getattr(self, name)) is not None and not (name in SPARSE and value == 0)
        }

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> BucketAggregate:
        agg = cls()
        for name, is_float in _FIELD_TYPES:
            value = item.get(name)
            if value is not None:
                setattr(agg, name, float(value) if is_float else int(value))
        return agg


_FIELD_TYPES = tuple((f.name, f.type in ("float", "float | None")) for f in fields(BucketAggregate))
_FIELD_NAMES = tuple(name for name, _ in _FIELD_TYPES)
