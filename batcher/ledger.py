"""Which buckets a batch closes, which it corrects, and each device's live values.

A shard's processor keeps, per device, the hour and the day its time base is in (the *open*
buckets) in memory, beside the register state. A bucket is written to the store once, when the
device's time base passes its end: then it is *closed*. What a batch adds to a bucket already
closed (a late reading's sample, energy of a span that began before the close) is a
*correction*, applied to the stored item exactly once. The live values (newest reading, the
open hour) are what the real-time view shows.

``settle`` is a pure function of the batch result and the ledgers before it, so a replayed
batch settles exactly as its first attempt did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from batcher.batch import BatchResult
from batcher.buckets import BucketAggregate, Quarter, hour_key

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@lru_cache(maxsize=4096)
def bucket_start_ms(bucket: str) -> int:
    """The start of ``h#2026-11-27T13`` (13:00) or ``d#2026-11-27`` (midnight), UTC."""
    kind, _, start = bucket.partition("#")
    begin = datetime.strptime(start, "%Y-%m-%dT%H" if kind == "h" else "%Y-%m-%d")
    return int(begin.replace(tzinfo=UTC).timestamp() * 1000)


def bucket_end_ms(bucket: str) -> int:
    """The end of ``h#2026-11-27T13`` (14:00) or ``d#2026-11-27`` (the next midnight), UTC."""
    return bucket_start_ms(bucket) + (HOUR_MS if bucket.startswith("h#") else DAY_MS)


@dataclass(slots=True)
class Ledger:
    """One device's open buckets and how far its buckets are closed."""

    open: dict[str, BucketAggregate] = field(default_factory=dict)
    closed_through_ms: int | None = None
    """Every bucket ending at or before this instant is written; None: nothing closed yet."""
    stored: int = 0
    """Readings stored so far: only grows, so it orders the device's live values."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"open": {k: a.to_dict() for k, a in self.open.items()}, "stored": self.stored}
        if self.closed_through_ms is not None:
            out["closed_through_ms"] = self.closed_through_ms
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Ledger:
        if not d:
            return cls()
        closed = d.get("closed_through_ms")
        return cls(
            open={k: BucketAggregate.from_dict(a) for k, a in d.get("open", {}).items()},
            closed_through_ms=None if closed is None else int(closed),
            stored=int(d.get("stored", 0)),
        )


@dataclass(frozen=True, slots=True)
class Live:
    """A device's real-time values: its newest reading and its open hour."""

    stored: int
    ts_ms: int
    power_w: float | None
    register_wh: float
    hour: str
    hour_energy_wh: float
    hour_samples: int
    hour_power_max_w: float | None
    hour_export_wh: float = 0.0
    hour_seq_gaps: int = 0
    hour_missing: int = 0
    hour_silent_ms: int = 0
    hour_quarters: tuple[Quarter, ...] = ()
    """The open hour's quarters (empty for an hour kept before quarters were)."""


@dataclass(slots=True)
class Settlement:
    ledgers: dict[str, Ledger]
    """Every device of the batch -> its ledger after the batch."""
    closed: dict[tuple[str, str], BucketAggregate]
    """Buckets this batch closed: their final figures, to be written once."""
    corrections: dict[tuple[str, str], BucketAggregate]
    """What the batch adds to buckets closed (written) before it."""
    live: dict[str, Live]
    """The live values of every device whose values changed."""


def settle(result: BatchResult, prior: Mapping[str, Ledger]) -> Settlement:
    """Fold a batch into the devices' ledgers; the ledgers given are not modified."""
    ledgers: dict[str, Ledger] = {}
    closed: dict[tuple[str, str], BucketAggregate] = {}
    corrections: dict[tuple[str, str], BucketAggregate] = {}
    live: dict[str, Live] = {}
    for device_id in result.states:
        before = prior.get(device_id) or Ledger()
        ledger = Ledger(dict(before.open), before.closed_through_ms, before.stored)
        ledgers[device_id] = ledger
    for (device_id, bucket), delta in result.aggregates.items():
        ledger = ledgers[device_id]
        if ledger.closed_through_ms is not None and bucket_end_ms(bucket) <= ledger.closed_through_ms:
            corrections[(device_id, bucket)] = delta
        elif bucket in ledger.open:
            ledger.open[bucket] = ledger.open[bucket].merge(delta)
        else:
            ledger.open[bucket] = delta.merge(BucketAggregate.for_bucket(bucket))
    for device_id, state in result.states.items():
        ledger = ledgers[device_id]
        ledger.stored += result.stored.get(device_id, 0)
        newest = state.newest
        if newest is None:
            continue
        base_ms = newest.ts_ms
        # The time base only moves forward: every bucket ending at or before it is complete.
        for bucket in sorted(ledger.open):
            if bucket_end_ms(bucket) <= base_ms:
                closed[(device_id, bucket)] = ledger.open.pop(bucket)
        horizon = base_ms - base_ms % HOUR_MS
        ledger.closed_through_ms = (
            horizon if ledger.closed_through_ms is None else max(ledger.closed_through_ms, horizon)
        )
        prior_ledger = prior.get(device_id)
        if (
            prior_ledger is not None
            and prior_ledger.stored == ledger.stored
            and not any(d == device_id for d, _ in closed)
        ):
            continue  # only duplicates: the live values did not change
        hour = hour_key(base_ms)
        agg = ledger.open.get(hour) or BucketAggregate()
        live[device_id] = Live(
            stored=ledger.stored,
            ts_ms=base_ms,
            power_w=state.newest_power_w,
            register_wh=newest.energy_wh,
            hour=hour,
            hour_energy_wh=agg.energy_wh,
            hour_samples=agg.samples,
            hour_power_max_w=agg.power_max_w,
            hour_export_wh=agg.export_wh,
            hour_seq_gaps=agg.seq_gaps,
            hour_missing=agg.missing,
            hour_silent_ms=agg.silent_ms,
            hour_quarters=tuple(agg.quarters or ()),
        )
    return Settlement(ledgers, closed, corrections, live)
