"""Hourly and daily aggregates of one device, and how energy is split across them.

Bucket keys are UTC: ``h#2026-11-27T13`` and ``d#2026-11-27``. An energy delta measured
between two readings is split across 15-minute *quarters* in proportion to the time each covers
of the interval between them. An hour's item carries its four quarters (``Quarter``: energy,
samples, peak power, export, silence), so every local-time interval, in any zone and across DST,
is a sum of quarters without a write per quarter. The hourly and daily buckets get the very same
pieces, so the sum over quarters equals the hour's and the sum over hours the day's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

HOUR_MS = 3_600_000
QUARTER_MS = 900_000

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


def split_by(energy_wh: float, start_ms: int, end_ms: int, period_ms: int) -> Iterator[tuple[int, float]]:
    """``(period_start_ms, share_wh)`` pieces of ``energy_wh`` spread evenly over [start, end],
    one per period of ``period_ms`` (aligned to the epoch) the interval covers.

    An empty or backwards interval puts everything in the period of ``end_ms``.
    """
    if end_ms <= start_ms:
        yield end_ms - end_ms % period_ms, energy_wh
        return
    period = start_ms - start_ms % period_ms
    if end_ms <= period + period_ms:
        yield period, energy_wh  # the common case: both readings in one period
        return
    span = end_ms - start_ms
    given = 0.0
    while period < end_ms:
        nxt = period + period_ms
        if nxt >= end_ms:
            # The last piece takes the remainder so the pieces add up to the delta exactly.
            yield period, energy_wh - given
            return
        share = energy_wh * (nxt - max(period, start_ms)) / span
        given += share
        yield period, share
        period = nxt


def split_by_hour(energy_wh: float, start_ms: int, end_ms: int) -> Iterator[tuple[int, float]]:
    return split_by(energy_wh, start_ms, end_ms, HOUR_MS)


def split_by_quarter(energy_wh: float, start_ms: int, end_ms: int) -> Iterator[tuple[int, float]]:
    return split_by(energy_wh, start_ms, end_ms, QUARTER_MS)


def overlaps_by_quarter(start_ms: int, end_ms: int) -> Iterator[tuple[int, int]]:
    """``(quarter_start_ms, ms)``: how much of [start, end) lies in each quarter it touches."""
    quarter = start_ms - start_ms % QUARTER_MS
    while quarter < end_ms:
        nxt = quarter + QUARTER_MS
        yield quarter, min(nxt, end_ms) - max(quarter, start_ms)
        quarter = nxt


@dataclass(slots=True)
class Quarter:
    """One 15-minute quarter of an hour: the figures a local-time interval is summed from."""

    energy_wh: float = 0.0
    samples: int = 0
    power_max_w: float | None = None
    export_wh: float = 0.0
    silent_ms: int = 0

    def add(self, other: Quarter) -> None:
        self.energy_wh += other.energy_wh
        self.samples += other.samples
        if other.power_max_w is not None and (self.power_max_w is None or other.power_max_w > self.power_max_w):
            self.power_max_w = other.power_max_w
        self.export_wh += other.export_wh
        self.silent_ms += other.silent_ms

    def to_list(self) -> list[Any]:
        """``[energy_wh, samples, power_max_w, export_wh, silent_ms]``, trailing nothings left off."""
        # Full precision: a rounded quarter read back from a snapshot would not merge as the one kept in memory.
        values: list[Any] = [self.energy_wh, self.samples, self.power_max_w, self.export_wh]
        values.append(self.silent_ms)
        while len(values) > 2 and not values[-1]:
            values.pop()
        return values

    @classmethod
    def from_list(cls, values: list[Any]) -> Quarter:
        padded = [*values, None, None, None][:5]
        energy, samples, power_max, export, silent = padded
        return cls(
            float(energy or 0.0),
            int(samples or 0),
            None if power_max is None else float(power_max),
            float(export or 0.0),
            int(silent or 0),
        )


def new_quarters() -> list[Quarter]:
    return [Quarter(), Quarter(), Quarter(), Quarter()]


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
    quarters: list[Quarter] | None = None
    """An hour's four quarters (None for days, and for hours written before quarters were kept)."""

    @classmethod
    def for_bucket(cls, bucket: str) -> BucketAggregate:
        """An empty aggregate; an hour's has its quarters."""
        return cls(quarters=new_quarters()) if bucket.startswith("h#") else cls()

    def quarter(self, ts_ms: int) -> Quarter:
        """The quarter ``ts_ms`` falls in (an hour's aggregate only)."""
        assert self.quarters is not None
        return self.quarters[ts_ms % HOUR_MS // QUARTER_MS]

    def add_sample(self, ts_ms: int, power_w: float | None) -> None:
        if self.quarters is not None:
            q = self.quarters[ts_ms % HOUR_MS // QUARTER_MS]
            q.samples += 1
            if power_w is not None and (q.power_max_w is None or power_w > q.power_max_w):
                q.power_max_w = power_w
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
            quarters=_merge_quarters(self.quarters, other.quarters),
        )

    def to_dict(self) -> dict[str, Any]:
        # The anomaly counters and the export are written once they are not zero: most
        # buckets have none. The quarters are one attribute, ``q``: a list of four lists.
        out = {
            name: value
            for name in _FIELD_NAMES
            if (value := getattr(self, name)) is not None and not (name in SPARSE and value == 0)
        }
        if self.quarters is not None:
            out["q"] = [q.to_list() for q in self.quarters]
        return out

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> BucketAggregate:
        agg = cls()
        for name, is_float in _FIELD_TYPES:
            value = item.get(name)
            if value is not None:
                setattr(agg, name, float(value) if is_float else int(value))
        stored = item.get("q")
        if stored is not None:
            agg.quarters = [Quarter.from_list(list(values)) for values in stored]
        return agg


def _merge_quarters(a: list[Quarter] | None, b: list[Quarter] | None) -> list[Quarter] | None:
    if a is None and b is None:
        return None
    out = new_quarters()
    for side in (a, b):
        if side is not None:
            for mine, theirs in zip(out, side, strict=True):
                mine.add(theirs)
    return out


_FIELD_TYPES = tuple(
    (f.name, f.type in ("float", "float | None")) for f in fields(BucketAggregate) if f.name != "quarters"
)
_FIELD_NAMES = tuple(name for name, _ in _FIELD_TYPES)
