"""The pure parts of ``wattstream rebuild``: what to read, in which order, and what to change.

Nothing here does I/O. ``consumer.rebuild`` drives these with the stores.

Order. A device's records are in one shard at a time (its partition key is its id), so each
shard's raw objects are read in sequence-number order. A device that moved after a split or
merge must be taken in its parent shard before its child shard. What tells parent from child:

- the stream's listing (``ListShards``) names every shard's parents, but only for the shards
  still within the stream's retention: a shard closed more than 24 hours ago is gone from it;
- Kinesis numbers shards in the order it creates them (``shardId-000000000007``), and a child
  is created when its parents close, so its number is always higher than theirs. That fact
  needs nothing but the archive's keys and survives any retention.

So a shard the stream still lists waits only for its listed ancestors (unrelated shards hold
disjoint hash ranges, hence disjoint devices, and run in parallel), and a shard the stream no
longer lists is taken before every shard with a higher number: conservative, never wrong. (A
listed shard is never the descendant of an unlisted one with a lower number: a child closes
after its parents, so it leaves the listing after them.)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from batcher import BucketAggregate
from batcher.ledger import bucket_start_ms
from sinks.aggregates import BATCH, WRITER

DAY_MS = 86_400_000
LATE_LIMIT_MS = 36 * DAY_MS
"""The consumer refuses a reading 35 days older than its receipt (``stale_timestamp``), so no
record that arrived more than that after ``--to`` (plus a day for the arrival partitions) can
touch the range: the archive is read up to there and no further."""

_RAW_KEY = re.compile(r"^raw/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/shard=([^/]+)/(\d+)-(\d+)\.jsonl\.gz$")
_MARKERS = frozenset({WRITER, BATCH, "device_id", "bucket"})


@dataclass(frozen=True, slots=True, order=True)
class RawObject:
    """One committed batch in the archive, ordered by its shard's sequence numbers."""

    first: int
    last: int
    shard_id: str
    day: str
    hour: str
    """The arrival day and hour of the batch's first record, as in its key."""
    key: str


def parse_raw_key(key: str) -> RawObject | None:
    """The batch a ``raw/dt=…/hour=…/shard=…/<first>-<last>.jsonl.gz`` key names; None for another key."""
    match = _RAW_KEY.match(key)
    if match is None:
        return None
    day, hour, shard, first, last = match.groups()
    return RawObject(int(first), int(last), shard, day, hour, key)


def objects_by_shard(keys: Iterable[str], last_day: str) -> dict[str, list[RawObject]]:
    """Each shard's raw objects up to arrival day ``last_day``, in sequence-number order."""
    out: dict[str, list[RawObject]] = {}
    for key in keys:
        obj = parse_raw_key(key)
        if obj is not None and obj.day <= last_day:
            out.setdefault(obj.shard_id, []).append(obj)
    return {shard: sorted(objs) for shard, objs in sorted(out.items())}


def hours_of(objects: list[RawObject]) -> list[list[RawObject]]:
    """Consecutive runs of objects with the same arrival hour: the units a rebuild commits."""
    runs: list[list[RawObject]] = []
    for obj in objects:
        if runs and (runs[-1][-1].day, runs[-1][-1].hour) == (obj.day, obj.hour):
            runs[-1].append(obj)
        else:
            runs.append([obj])
    return runs


def shard_number(shard_id: str) -> int:
    """The number Kinesis gave the shard (``shardId-000000000007`` -> 7); -1 when it has none."""
    match = re.search(r"(\d+)$", shard_id)
    return int(match.group(1)) if match else -1


def predecessors(shards: Iterable[str], listed: Mapping[str, tuple[str, ...]] | None) -> dict[str, frozenset[str]]:
    """Per shard, every shard that must be rebuilt before it (see the module docstring)."""
    ordered = sorted(set(shards), key=lambda s: (shard_number(s), s))
    listed = listed or {}
    direct: dict[str, set[str]] = {s: set(listed.get(s, ())) for s in ordered}
    for i, shard in enumerate(ordered):
        if shard not in listed:
            for later in ordered[i + 1 :]:
                direct[later].add(shard)
    out: dict[str, frozenset[str]] = {}
    for shard in ordered:  # a shard's predecessors all sort before it
        seen: set[str] = set()
        todo = list(direct[shard])
        while todo:
            other = todo.pop()
            if other not in seen:
                seen.add(other)
                todo.extend(direct.get(other, ()))
        out[shard] = frozenset(s for s in seen if s in direct)
    return out


def topological(preds: Mapping[str, frozenset[str]]) -> list[str]:
    """The shards in an order where each comes after its predecessors."""
    return sorted(preds, key=lambda s: (len(preds[s]), shard_number(s), s))


# -- the parameters ----------------------------------------------------------------------------


def parse_day(text: str) -> int:
    """Epoch ms of a ``YYYY-MM-DD`` UTC midnight."""
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def day_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class Params:
    """What a rebuild is: its range, devices, target and rules. Its id keys its manifest."""

    first_ms: int
    end_ms: int
    devices: tuple[str, ...]
    """Empty: every device of the archive."""
    table: str
    tolerance_wh: float
    max_power_w: float
    anchor_window_ms: int
    future_tolerance_ms: int

    @property
    def rebuild_id(self) -> str:
        text = repr((self.first_ms, self.end_ms, sorted(self.devices), self.table, self.rules_key))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def rules_key(self) -> tuple[float, float, int, int]:
        return (self.tolerance_wh, self.max_power_w, self.anchor_window_ms, self.future_tolerance_ms)

    @property
    def last_day(self) -> str:
        """The last arrival day of the archive that can hold a reading of the range."""
        return day_text(self.end_ms + LATE_LIMIT_MS)

    def wants(self, device_id: str) -> bool:
        return not self.devices or device_id in self.devices

    def covers(self, bucket: str) -> bool:
        return bucket.startswith(("h#", "d#")) and self.first_ms <= bucket_start_ms(bucket) < self.end_ms


def in_range(
    params: Params, buckets: Mapping[tuple[str, str], BucketAggregate]
) -> dict[tuple[str, str], BucketAggregate]:
    return {key: agg for key, agg in buckets.items() if params.covers(key[1])}


# -- one commit unit's writes ------------------------------------------------------------------


@dataclass(slots=True)
class UnitWrites:
    """What the batches of one commit unit (a shard's arrival hour) write: the buckets they
    close, and corrections of buckets closed before.

    A correction of a bucket closed in the same unit is folded into it, in batch order, as the
    store would have added it; so the unit is written once, under one batch marker.
    """

    closed: dict[tuple[str, str], BucketAggregate]
    corrections: dict[tuple[str, str], BucketAggregate]

    @classmethod
    def empty(cls) -> UnitWrites:
        return cls({}, {})

    def add(
        self, closed: Mapping[tuple[str, str], BucketAggregate], corrections: Mapping[tuple[str, str], BucketAggregate]
    ) -> None:
        for key, agg in (*closed.items(), *corrections.items()):
            if key in self.closed:
                self.closed[key] = self.closed[key].merge(agg)
            elif key in self.corrections:
                self.corrections[key] = self.corrections[key].merge(agg)
            elif key in closed:
                self.closed[key] = agg
            else:
                self.corrections[key] = agg


# -- the differences ----------------------------------------------------------------------------


def figures(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's figures: everything but its key and writer pair."""
    return {k: v for k, v in item.items() if k not in _MARKERS}


def same_figures(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    fa, fb = figures(a), figures(b)
    if fa.keys() != fb.keys():
        return False
    for name, value in fa.items():
        other = fb[name]
        if isinstance(value, float) or isinstance(other, float):
            if not math.isclose(float(value), float(other), rel_tol=1e-12, abs_tol=1e-9):
                return False
        elif value != other:
            return False
    return True


def newer_than_read(item: Mapping[str, Any], read_through: Mapping[str, int]) -> bool:
    """True when a batch the rebuild did not read wrote the item (the consumer kept going)."""
    writer, batch = item.get(WRITER), item.get(BATCH)
    return writer in read_through and batch is not None and int(str(batch)) > read_through[str(writer)]


@dataclass(frozen=True, slots=True)
class Difference:
    device_id: str
    bucket: str
    stored: Mapping[str, Any] | None
    rebuilt: Mapping[str, Any] | None


def differences(
    device_id: str,
    rebuilt: Mapping[str, Mapping[str, Any]],
    stored: Mapping[str, Mapping[str, Any]],
    read_through: Mapping[str, int],
) -> tuple[list[Difference], int]:
    """The device's buckets whose stored figures differ from the rebuilt ones, and how many
    stored items were left alone because a batch the rebuild never read wrote them."""
    out: list[Difference] = []
    kept = 0
    for bucket in sorted(set(rebuilt) | set(stored), key=lambda b: (bucket_start_ms(b), b)):
        new, old = rebuilt.get(bucket), stored.get(bucket)
        if old is not None and newer_than_read(old, read_through):
            kept += 1
        elif new is None or old is None or not same_figures(new, old):
            out.append(Difference(device_id, bucket, old, new))
    return out, kept


DIFF_COLUMNS = (
    "device_id",
    "bucket",
    "stored_energy_wh",
    "rebuilt_energy_wh",
    "stored_samples",
    "rebuilt_samples",
)


def diff_row(d: Difference) -> list[str]:
    def cell(item: Mapping[str, Any] | None, name: str) -> str:
        return "" if item is None else repr(item.get(name, 0))

    return [
        d.device_id,
        d.bucket,
        cell(d.stored, "energy_wh"),
        cell(d.rebuilt, "energy_wh"),
        cell(d.stored, "samples"),
        cell(d.rebuilt, "samples"),
    ]
