"""In-memory stores that keep the promises of ``sinks.ports``, and a way to crash between steps.

For tests and for anyone embedding the processor without AWS. Each store keeps what its AWS
counterpart keeps and in the same form: DynamoDB items in their wire form (so numbers go
through ``encode_item`` and ``decode_item`` exactly as they do against DynamoDB), S3 objects as
the very bytes the AWS store would upload. The conditions are the same ones: the manifest's
epoch and owner, the aggregates' writer markers ``w`` and ``s``, the live view's ``v#<shard>``.
``tests/contract`` runs one suite against both backends.

The tables also refuse what DynamoDB refuses and the emulators take (``sinks.limits``): an
item DynamoDB would reject raises ``SinkError`` here too, as does an update of a key attribute.
Numbers are kept as sent, as moto keeps them; DynamoDB trims trailing zeroes, so against it an
integral float can read back as an int: compare values, not types.

``crash_at`` wraps any object so that one of its methods raises ``Crash`` at its n-th call,
before or after the call takes effect: the process dying between two steps of a commit.
``Crash`` derives from ``BaseException`` so that no ``except Exception`` on the way catches it.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

from batcher import BucketAggregate
from batcher.ledger import Live
from readings.errors import FencedError, SinkError
from sinks.aggregates import BATCH, WRITER, Writer, WriteResult, bucket_item
from sinks.archive import decode_lines, encode_lines
from sinks.dynamo import decode_item, encode_item
from sinks.limits import item_size_bytes, refusals
from sinks.live import _wire_list, device_attr, entry, group_of, live_key, marker_attr
from sinks.manifest import Manifest, manifest_fields, manifest_from_item
from sinks.ranges import Change, ReplaceResult, bucket_bounds
from sinks.snapshot import decode_snapshot, encode_snapshot

T = TypeVar("T")

Key = tuple[str, ...]
Wire = dict[str, Any]
"""An item in DynamoDB's wire form: attribute name -> ``{"S": ...}``, ``{"N": ...}``, ..."""

CORRECTION_ROUNDS = 5
"""As ``AggregateStore.correct``: a correction that keeps conflicting fails after this many reads."""


class Crash(BaseException):
    """The process dies here."""


class WriteRefusedError(Exception):
    """A conditional write found the item other than expected; ``item`` is the stored one."""

    def __init__(self, item: Wire | None) -> None:
        super().__init__("the conditional request failed")
        self.item = item


# -- the backing: a table and a bucket --------------------------------------------------------


class MemoryTable:
    """A DynamoDB table's items in wire form. Thread-safe; every write is atomic."""

    def __init__(self, key: tuple[str, ...] = ("device_id", "bucket")) -> None:
        self.key = key
        self._items: dict[Key, Wire] = {}
        self.lock = threading.RLock()
        """Held across a read and a write, it makes them one atomic step."""

    def key_of(self, item: Mapping[str, Any]) -> Key:
        return tuple(item[name]["S"] for name in self.key)

    def get(self, key: Key) -> Wire | None:
        with self.lock:
            item = self._items.get(key)
            return None if item is None else copy.deepcopy(item)

    def put(self, item: Wire, *, condition: Callable[[Wire | None], bool] | None = None) -> float:
        """Store ``item`` whole (PutItem); the write units billed. ``WriteRefusedError`` if refused."""
        self._check(item)
        key = self.key_of(item)
        with self.lock:
            stored = self.get(key)
            if condition is not None and not condition(stored):
                raise WriteRefusedError(stored)
            self._items[key] = copy.deepcopy(item)
            return _write_units(stored, item)

    def update(
        self,
        key: Key,
        *,
        set_: Mapping[str, Any],
        remove: Iterable[str] = (),
        condition: Callable[[Wire | None], bool] | None = None,
    ) -> float:
        """Set and remove attributes of one item, creating it if need be (UpdateItem)."""
        remove = list(remove)
        for name in (*set_, *remove):
            if name in self.key:
                raise SinkError(f"UpdateItem: ValidationException: cannot update attribute {name}, " "part of the key")
        with self.lock:
            stored = self.get(key)
            if condition is not None and not condition(stored):
                raise WriteRefusedError(stored)
            item = (
                {name: {"S": part} for name, part in zip(self.key, key, strict=False)}
                if stored is None
                else copy.deepcopy(stored)
            )
            item.update(copy.deepcopy(dict(set_)))
            for name in remove:
                item.pop(name, None)
            self._check(item)
            self._items[key] = item
            return _write_units(stored, item)

    def delete(self, key: Key) -> None:
        with self.lock:
            self._items.pop(key, None)

    def wire_items(self) -> dict[Key, Wire]:
        """Every item as stored, by key."""
        with self.lock:
            return {key: copy.deepcopy(item) for key, item in sorted(self._items.items())}

    def items(self) -> list[dict[str, Any]]:
        """Every item decoded (``decode_item``), in key order: what a scan of the table reads."""
        return [decode_item(item) for item in self.wire_items().values()]

    def _check(self, item: Wire) -> None:
        problems = refusals(item, partition_key=self.key[0], sort_key=self.key[1] if len(self.key) > 1 else None)
        if problems:
            raise SinkError(f"ValidationException: {'; '.join(problems[:3])}")


def _write_units(before: Wire | None, after: Wire) -> float:
    # A write is billed per started kilobyte of the larger of the item before and after it.
    size = max(item_size_bytes(after), item_size_bytes(before) if before is not None else 0)
    return float(max(1, math.ceil(size / 1024)))


class MemoryBucket:
    """An S3 bucket's objects, as bytes. Thread-safe."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.RLock()

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            self._objects[key] = bytes(body)

    def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` when there is none."""
        with self._lock:
            return self._objects[key]

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(key for key in self._objects if key.startswith(prefix))

    def objects(self) -> dict[str, bytes]:
        with self._lock:
            return dict(sorted(self._objects.items()))


# -- the stores -------------------------------------------------------------------------------


class MemoryManifests:
    """Batch manifests (``sinks.manifest.ManifestStore``), one item per shard."""

    def __init__(self, table: MemoryTable | None = None) -> None:
        self.table = table if table is not None else MemoryTable(("shard_id",))

    def read(self, shard_id: str) -> Manifest | None:
        item = self.table.get((shard_id,))
        return None if item is None else manifest_from_item(decode_item(item))

    def claim(self, shard_id: str, owner: str) -> Manifest:
        # The read and the raise under the table's lock: one atomic step, as the UpdateItem is.
        with self.table.lock:
            stored = self.table.get((shard_id,))
            fields: dict[str, Any] = decode_item(stored) if stored is not None else {"shard_id": shard_id}
            fields.update(epoch=int(fields.get("epoch", 0)) + 1, owner=owner)
            self.table.update((shard_id,), set_=encode_item({"epoch": fields["epoch"], "owner": owner}))
        return manifest_from_item(fields)

    def begin_batch(self, claimed: Manifest, **batch: Any) -> Manifest:
        manifest = Manifest(**{**manifest_fields(claimed), **batch})

        def still_ours(stored: Wire | None) -> bool:
            if stored is None:
                return False
            fields = decode_item(stored)
            return fields.get("epoch") == claimed.epoch and fields.get("owner") == claimed.owner

        try:
            self.table.put(encode_item(manifest_fields(manifest)), condition=still_ours)
        except WriteRefusedError:
            raise FencedError(f"{claimed.shard_id}: claimed by another worker since epoch {claimed.epoch}") from None
        return manifest


class MemoryArchive:
    """Raw records and dead letters (``sinks.archive.Archive``) in a bucket."""

    def __init__(self, bucket: MemoryBucket | None = None) -> None:
        self.bucket = bucket if bucket is not None else MemoryBucket()

    def put(self, key: str, lines: Iterable[Mapping[str, Any]]) -> int:
        body = encode_lines(lines)
        self.bucket.put(key, body)
        return len(body)

    def get(self, key: str) -> list[dict[str, Any]]:
        return decode_lines(self.bucket.get(key))

    def keys(self, prefix: str) -> list[str]:
        return self.bucket.keys(prefix)


class MemorySnapshots:
    """Shard snapshots (``sinks.snapshot.SnapshotStore``) in a bucket."""

    def __init__(self, bucket: MemoryBucket | None = None) -> None:
        self.bucket = bucket if bucket is not None else MemoryBucket()

    def put(self, key: str, shard_id: str, last_sequence_number: str, devices: Mapping[str, Any]) -> int:
        body = encode_snapshot(shard_id, last_sequence_number, devices)
        self.bucket.put(key, body)
        return len(body)

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            blob = self.bucket.get(key)
        except KeyError:
            return None
        return decode_snapshot(blob)

    def delete(self, key: str) -> None:
        self.bucket.delete(key)


class MemoryAggregates:
    """Closed buckets and corrections (``sinks.aggregates.AggregateStore``), with its markers."""

    def __init__(self, table: MemoryTable | None = None) -> None:
        self.table = table if table is not None else MemoryTable()
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def write_closed(self, writer: Writer, closed: Mapping[tuple[str, str], BucketAggregate]) -> WriteResult:
        self._refuse_when_closed(closed)
        result = WriteResult()
        existing: dict[tuple[str, str], BucketAggregate] = {}
        for key, agg in closed.items():
            created = self._create(writer, key, agg)
            if created is None:
                existing[key] = agg
            else:
                result.add(created)
        if existing:
            result.add(self.correct(writer, existing))
        return result

    def correct(self, writer: Writer, deltas: Mapping[tuple[str, str], BucketAggregate]) -> WriteResult:
        result = WriteResult()
        pending = dict(deltas)
        for _ in range(CORRECTION_ROUNDS):
            if not pending:
                return result
            self._refuse_when_closed(pending)
            stored = {key: self.table.get(key) for key in pending}
            result.read_units += len(pending)
            retry = {}
            for key, delta in pending.items():
                outcome = self._merge(writer, key, delta, stored[key])
                if outcome is None:
                    retry[key] = delta  # changed between our read and our write: read again
                else:
                    result.add(outcome)
            pending = retry
        raise SinkError(f"corrections of {len(pending)} items kept conflicting")

    def _create(self, writer: Writer, key: tuple[str, str], agg: BucketAggregate) -> WriteResult | None:
        item = encode_item({**bucket_item(*key, agg), WRITER: writer.shard_id, BATCH: writer.marker})
        try:
            units = self.table.put(item, condition=lambda stored: stored is None or BATCH not in stored)
        except WriteRefusedError as refused:
            verdict = writer.verdict(decode_item(refused.item or {}))
            if verdict == "applied":
                return WriteResult(skipped=1)
            if verdict == "fenced":
                old = decode_item(refused.item or {})
                raise FencedError(f"{key}: written by {old.get(WRITER)} at {old.get(BATCH)}") from None
            return None
        return WriteResult(written=1, consumed_wcu=units)

    def _merge(
        self, writer: Writer, key: tuple[str, str], delta: BucketAggregate, stored_wire: Wire | None
    ) -> WriteResult | None:
        stored = None if stored_wire is None else decode_item(stored_wire)
        verdict = writer.verdict(stored)
        if verdict == "applied":
            return WriteResult(skipped=1)
        if verdict == "fenced":
            assert stored is not None
            raise FencedError(f"{key}: written by {stored.get(WRITER)} at {stored.get(BATCH)}")
        merged = delta if stored is None else BucketAggregate.from_dict(dict(stored)).merge(delta)
        item = encode_item({**bucket_item(*key, merged), WRITER: writer.shard_id, BATCH: writer.marker})
        if stored is None or BATCH not in stored:

            def condition(now: Wire | None) -> bool:
                return now is None or BATCH not in now
        else:
            seen = (stored_wire or {}).get(WRITER), (stored_wire or {}).get(BATCH)

            def condition(now: Wire | None) -> bool:
                return now is not None and (now.get(WRITER), now.get(BATCH)) == seen

        try:
            units = self.table.put(item, condition=condition)
        except WriteRefusedError:
            return None
        return WriteResult(written=1, consumed_wcu=units)

    def _refuse_when_closed(self, items: Mapping[Any, Any]) -> None:
        # As a thread pool after shutdown: refused, never silently dropped.
        if self._closed and items:
            raise RuntimeError("cannot schedule new futures after shutdown")


class MemoryLiveView:
    """The real-time view (``sinks.live.LiveView``): devices packed into one item per group."""

    def __init__(self, table: MemoryTable | None = None, groups: int = 100) -> None:
        self.table = table if table is not None else MemoryTable()
        self.groups = groups

    def write(
        self,
        shard_id: str,
        marker: str,
        live: Mapping[str, Live],
        *,
        ancestors: Iterable[str] = (),
    ) -> tuple[int, float]:
        by_group: dict[int, list[tuple[str, Live]]] = {}
        for device_id, device_live in live.items():
            by_group.setdefault(group_of(device_id, self.groups), []).append((device_id, device_live))
        drop = [marker_attr(a) for a in ancestors]
        mine = marker_attr(shard_id)

        def not_later(stored: Wire | None) -> bool:
            return stored is None or mine not in stored or stored[mine]["S"] <= marker

        written, units = 0, 0.0
        for group, members in sorted(by_group.items()):
            key = live_key(group)
            values: dict[str, Any] = {mine: {"S": marker}}
            values.update(
                (device_attr(device_id), _wire_list(entry(device_live))) for device_id, device_live in sorted(members)
            )
            try:
                units += self.table.update(
                    (key["device_id"], key["bucket"]), set_=values, remove=drop, condition=not_later
                )
            except WriteRefusedError:
                raise FencedError(f"live#{group}: a later batch of {shard_id} was written") from None
            written += 1
        return written, units


class MemoryBucketRanges:
    """A device's range of bucket items (``sinks.ranges.BucketRanges``), read and replaced on conditions."""

    def __init__(self, table: MemoryTable | None = None) -> None:
        self.table = table if table is not None else MemoryTable()

    def read(self, device_id: str, first_ms: int, end_ms: int) -> dict[str, dict[str, Any]]:
        bounds = bucket_bounds(first_ms, end_ms)
        out: dict[str, dict[str, Any]] = {}
        for (device, bucket), wire in self.table.wire_items().items():
            if device == device_id and any(low <= bucket <= high for low, high in bounds):
                out[bucket] = decode_item(wire)
        return out

    def replace(self, changes: Sequence[Change]) -> ReplaceResult:
        result = ReplaceResult()
        for change in changes:
            key = (change.device_id, change.bucket)
            with self.table.lock:
                stored = self.table.get(key)
                if not _still_seen(stored, change.seen):
                    result.refused.append(key)
                elif change.item is None:
                    self.table.delete(key)
                    result.deleted += 1
                    result.consumed_wcu += _write_units(stored, stored or {})
                else:
                    result.consumed_wcu += self.table.put(encode_item(change.item))
                    result.written += 1
        return result


def _still_seen(now: Wire | None, seen: Mapping[str, Any] | None) -> bool:
    """As ``sinks.ranges.condition_on``: the stored item's writer pair is still the one read."""
    if seen is None or now is None:
        return seen is None and now is None
    if BATCH not in seen:
        return BATCH not in now
    pair = now.get(WRITER, {}).get("S"), now.get(BATCH, {}).get("S")
    return pair == (str(seen.get(WRITER, "")), str(seen[BATCH]))


@dataclass
class MemoryBackend:
    """The five stores over one state table, one aggregates table and one bucket, as in AWS."""

    live_groups: int = 100
    state_table: MemoryTable = field(default_factory=lambda: MemoryTable(("shard_id",)))
    aggregates_table: MemoryTable = field(default_factory=MemoryTable)
    bucket: MemoryBucket = field(default_factory=MemoryBucket)

    def __post_init__(self) -> None:
        self.manifests = MemoryManifests(self.state_table)
        self.archive = MemoryArchive(self.bucket)
        self.snapshots = MemorySnapshots(self.bucket)
        self.aggregates = MemoryAggregates(self.aggregates_table)
        self.live = MemoryLiveView(self.aggregates_table, self.live_groups)

    def contents(self) -> dict[str, Any]:
        """Everything stored: the two tables' items (wire form) and the bucket's objects."""
        return {
            "state": self.state_table.wire_items(),
            "aggregates": self.aggregates_table.wire_items(),
            "objects": self.bucket.objects(),
        }


# -- crashes ----------------------------------------------------------------------------------


def crash() -> NoReturn:
    raise Crash("the process dies here")


class CallHook:
    """A stand-in for ``target``: at the ``call``-th call of ``method``, ``action`` runs.

    Before the call (the call never happens, as when the process dies on its way to it) or,
    with ``after=True``, once the call took effect and before it returns. Every other
    attribute is the target's own.
    """

    def __init__(
        self, target: Any, method: str, *, call: int = 1, after: bool = False, action: Callable[[], None] = crash
    ) -> None:
        if call < 1:
            raise ValueError("calls are counted from 1")
        self._target = target
        self._method = method
        self._at = call
        self._after = after
        self._action = action
        self.calls = 0
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name != self._method:
            return attribute

        def hooked(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            due = self.calls == self._at
            if due and not self._after:
                self.fired = True
                self._action()
            result = attribute(*args, **kwargs)
            if due and self._after:
                self.fired = True
                self._action()
            return result

        return hooked


def crash_at(target: T, method: str, *, call: int = 1, after: bool = False) -> T:
    """``target`` whose ``method`` raises ``Crash`` at its ``call``-th call (see ``CallHook``)."""
    return cast(T, CallHook(target, method, call=call, after=after))


def on_call(target: T, method: str, action: Callable[[], None], *, call: int = 1, after: bool = False) -> T:
    """``target`` whose ``method`` runs ``action`` at its ``call``-th call (a pause, a takeover)."""
    return cast(T, CallHook(target, method, call=call, after=after, action=action))


# The registry's fake lives in its own module (it builds on MemoryTable above); imported last so
# that module finds this one complete. The alias marks the re-export.
from sinks.memory_registry import MemoryRegistry as MemoryRegistry  # noqa: E402 - needs MemoryTable, defined above
