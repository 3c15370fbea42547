"""The stores a shard's processor commits a batch to, as ports: what each one promises.

``consumer.protocol.commit`` calls them in its order (manifest, archive, aggregates, live view,
snapshot, checkpoint) and relies on exactly what is stated here, nothing more; the device
registry is read and written beside them, by commands and by whatever needs a device's time zone
or thresholds. Two backends keep these promises: the AWS one (``sinks.manifest``,
``sinks.archive``, ``sinks.snapshot``, ``sinks.aggregates``, ``sinks.live``, ``sinks.registry``)
and the in-memory one (``sinks.memory``); the suites in ``tests/contract`` hold both to them.

``ManifestPort`` (the consumer-state table, one item per shard)
    ``read`` returns the shard's item as last written (a consistent read), None for a shard
    never claimed. ``claim`` raises the epoch by one (the first claim gives 1) and sets the
    owner in one atomic step, and returns the item after that step, batch fields included: a
    batch begun by the previous owner is seen by the new one. Every claim fences every claim
    before it, the same owner's included. ``begin_batch`` writes the whole item (the claim's
    fields overlaid with the batch's) on condition that epoch and owner are still the claim's;
    otherwise it raises ``FencedError`` and writes nothing. The same call twice writes the same
    item. Fields that are None are not stored and read back as None. It does not check that the
    batch follows the previous one: the claim is the only condition.

``ArchivePort`` (raw records and dead letters: gzip JSON lines)
    ``put`` writes the object unconditionally (the last put of a key wins) and returns its
    size. The bytes are a function of the lines alone (gzip without a time stamp), so the same
    lines put twice give the same object. A line orjson refuses is escaped, not dropped.
    ``get`` returns the lines; a key never put raises, and which exception is the backend's
    (S3: botocore's ``NoSuchKey``, not wrapped in ``SinkError``; memory: ``KeyError``).
    ``keys`` lists every key under a prefix in ascending order.

``SnapshotPort`` (every device's state after a batch, one object per batch)
    ``put`` writes deterministic bytes (sorted keys, gzip without a time stamp) and returns
    their size; the last put of a key wins. ``get`` returns the devices, None when the object
    does not exist, and raises ``SinkError`` for an object of another format. ``delete`` is
    idempotent: deleting a missing key is no error.

``AggregatePort`` (closed hours and days)
    Every item a writer touches ends stamped with its shard (``w``) and batch (``s``). Before a
    change the stored pair decides, per item: the same shard and batch: skipped (counted in
    ``WriteResult.skipped``, the item untouched); the same shard with a later batch, or a shard
    among the writer's descendants: ``FencedError``; anything else (no item, an earlier batch,
    an ancestor or an unrelated shard): written, conditional on the pair it saw, so two writers
    never both succeed on one item. ``write_closed`` creates each item with its figures; an
    item that exists already and is not refused gets the figures *added* (it becomes a
    correction). ``correct`` adds each delta to the stored figures, or creates the item from the
    delta. A ``FencedError`` may leave other items of the same call written (the AWS backend
    writes concurrently); the caller stops anyway. ``consumed_wcu`` is the backend's billing
    (DynamoDB's reported units; memory: per started kilobyte). After ``close`` a write raises
    ``RuntimeError`` instead of being dropped.
    Not promised: an item without ``s`` (written by anything but a ``Writer``) is overwritten
    by ``write_closed`` but added to by ``correct``.

``LivePort`` (many devices' newest values per item, grouped by the MD5 of the device id)
    ``write`` makes one conditional update per group, in ascending group order: each device's
    packed entry (``sinks.live.entry``) and the shard's marker ``v#<shard>`` are set, on
    condition that the stored marker is absent or not later than this batch's. So the same
    batch again rewrites the same values, and an older batch raises ``FencedError`` at the
    first group a later batch of the shard wrote (the groups before it are written). The
    markers of the given ancestors are removed from every item written; other devices and
    other shards' markers in an item are left alone. Returns (items written, capacity units).
    Not promised: an ancestor writing after its marker was removed is not refused here
    (fencing an ancestor rests on the manifest and the aggregates), and nothing orders one
    device's entries beyond the shard's marker. DynamoDB refuses a device whose id is a key
    attribute of the table (``device_id``, ``bucket``): ``SinkError``.

``RangePort`` (a device's closed hours and days over a range, for ``wattstream rebuild``)
    ``read`` returns the device's hour and day items whose start lies in [first_ms, end_ms)
    (UTC midnights), by bucket, as stored (consistent reads); a table that does not exist
    holds nothing. ``replace`` applies each ``Change`` on condition that the stored item is
    still the one the change names as ``seen``: no item when ``seen`` is None; an item without
    ``s`` when ``seen`` has none; else the same ``w`` and ``s``. An item is put whole, or
    deleted when the change's item is None. A refused change leaves the item as it is and is
    listed in ``ReplaceResult.refused``, never raised; the others are applied.

``RegistryPort`` (one entry per device, ``sinks.registry``: the AWS one is ``RegistryStore``)
    Reads are consistent: an entry put is read back at once, by ``get``, ``get_many`` and
    ``list``. ``get`` returns None for a device not registered; ``get_many`` leaves such devices
    out and takes an id twice as once. ``put`` stores the entry whole (the last put wins); with
    ``overwrite=False`` it raises ``RegistryError`` for a registered device and changes nothing.
    ``update`` changes the given fields of a registered device in one atomic step (None unsets a
    field, empty tags remove them; ``tz`` cannot be unset) and returns the entry after it; for a
    device not registered it raises ``RegistryError`` and creates nothing; a value out of the
    rules raises ``RegistryError`` before anything is written. ``list`` returns the entries at
    ``site`` and carrying ``tag`` (each when given) in ascending device id order. ``remove`` says
    whether there was an entry. An id that is not a thing name raises ``RegistryError``
    everywhere.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from batcher import BucketAggregate
from batcher.ledger import Live
from sinks.aggregates import Writer, WriteResult
from sinks.manifest import Manifest
from sinks.ranges import Change, ReplaceResult
from sinks.registry import DeviceInfo

__all__ = ["AggregatePort", "ArchivePort", "LivePort", "ManifestPort", "RangePort", "RegistryPort", "SnapshotPort"]


@runtime_checkable
class ManifestPort(Protocol):
    def read(self, shard_id: str) -> Manifest | None:
        """The shard's manifest as last written; None when the shard was never claimed."""

    def claim(self, shard_id: str, owner: str) -> Manifest:
        """Take the shard for ``owner`` (epoch + 1); the manifest after the claim."""

    def begin_batch(self, claimed: Manifest, **batch: Any) -> Manifest:
        """Record the batch about to be written; ``FencedError`` if the shard was claimed since."""


@runtime_checkable
class ArchivePort(Protocol):
    def put(self, key: str, lines: Iterable[Mapping[str, Any]]) -> int:
        """Write the lines under ``key``; the object's size in bytes."""

    def get(self, key: str) -> list[dict[str, Any]]:
        """The lines under ``key``; raises when there is no such object."""

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, ascending."""


@runtime_checkable
class SnapshotPort(Protocol):
    def put(self, key: str, shard_id: str, last_sequence_number: str, devices: Mapping[str, Any]) -> int:
        """Write the shard's devices after the batch ending at ``last_sequence_number``; the size in bytes."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The devices of a snapshot; None when the object does not exist."""

    def delete(self, key: str) -> None:
        """Remove the snapshot; a missing one is no error."""


@runtime_checkable
class AggregatePort(Protocol):
    def write_closed(self, writer: Writer, closed: Mapping[tuple[str, str], BucketAggregate]) -> WriteResult:
        """Create each closed bucket's item; one that exists already is handled as a correction."""

    def correct(self, writer: Writer, deltas: Mapping[tuple[str, str], BucketAggregate]) -> WriteResult:
        """Add each delta to its stored bucket, or create the bucket from it."""

    def close(self) -> None:
        """Release what the store holds; later writes raise."""


@runtime_checkable
class LivePort(Protocol):
    def write(
        self,
        shard_id: str,
        marker: str,
        live: Mapping[str, Live],
        *,
        ancestors: Iterable[str] = (),
    ) -> tuple[int, float]:
        """Write every device's values, one update per group: (items written, capacity units)."""


@runtime_checkable
class RangePort(Protocol):
    def read(self, device_id: str, first_ms: int, end_ms: int) -> dict[str, dict[str, Any]]:
        """The device's hour and day items starting in [first_ms, end_ms), by bucket."""

    def replace(self, changes: Sequence[Change]) -> ReplaceResult:
        """Put or delete each item on its condition; refused ones are listed."""


@runtime_checkable
class RegistryPort(Protocol):
    def get(self, device_id: str) -> DeviceInfo | None:
        """The device's entry; None when it is not registered."""

    def get_many(self, device_ids: Iterable[str]) -> dict[str, DeviceInfo]:
        """The entries of those devices that are registered, by id."""

    def put(self, info: DeviceInfo, *, overwrite: bool = True) -> None:
        """Store the entry whole; with ``overwrite=False``, ``RegistryError`` if the device is registered."""

    def update(self, device_id: str, /, **changes: Any) -> DeviceInfo:
        """Change some fields of a registered device (None unsets one); the entry after it."""

    def remove(self, device_id: str) -> bool:
        """Delete the device's entry; whether there was one."""

    def list(self, site: str | None = None, tag: str | None = None) -> builtins.list[DeviceInfo]:
        """The entries at ``site`` and with ``tag`` (each when given), by device id."""
