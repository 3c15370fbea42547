"""Batch manifests: the consumer's own record of each shard's batch in flight.

One item per shard in the consumer-state table (never in KCL's lease table):

    shard_id, epoch, owner, first_sequence_number, last_sequence_number, records, raw_key, trigger,
    prev_state_key, state_key

``prev_state_key`` and ``state_key`` name the shard's snapshots (``sinks.snapshot``) before
and after the batch. See ``consumer.protocol`` for the order of a flush.
A manifest whose ``last_sequence_number`` lies past the shard's checkpoint is a batch that was being
written when its worker died; the next owner rebuilds exactly that batch.

Fencing: a worker ``claim``s the shard when KCL gives it the lease, raising ``epoch`` by one.
``begin_batch`` is conditional on the epoch still being the worker's own, so a zombie (an old
owner still flushing after its lease moved) is refused before it writes anything new and
stops as if its lease were lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from readings.errors import ConditionFailedError, FencedError
from sinks.dynamo import decode_item, encode_item, with_retries
from sinks.position import SequenceNumber, is_past

# Manifests written before the positions had their own names; read, never written.
_LEGACY_NAMES = {"first_seq": "first_sequence_number", "last_seq": "last_sequence_number"}


@dataclass(frozen=True, slots=True)
class Manifest:
    shard_id: str
    epoch: int
    owner: str
    first_sequence_number: SequenceNumber | None = None
    last_sequence_number: SequenceNumber | None = None
    records: int = 0
    raw_key: str | None = None
    trigger: str | None = None
    prev_state_key: str | None = None
    state_key: str | None = None

    def pending_after(self, checkpoint: str | None) -> bool:
        """True when this batch was begun but never checkpointed."""
        return self.last_sequence_number is not None and is_past(self.last_sequence_number, checkpoint)


class ManifestStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def read(self, shard_id: str) -> Manifest | None:
        response = with_retries(
            lambda: self._client.get_item(
                TableName=self._table, Key={"shard_id": {"S": shard_id}}, ConsistentRead=True
            ),
            what="GetItem manifest",
        )
        item = response.get("Item")
        if item is None:
            return None
        return manifest_from_item(decode_item(item))

    def claim(self, shard_id: str, owner: str) -> Manifest:
        """Take the shard for ``owner``: the returned manifest carries the new epoch.

        One atomic update raises the epoch and returns the item as it is after it, so a batch a
        zombie began just before is seen (and replayed), and one it begins just after is refused.
        """
        response = with_retries(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"shard_id": {"S": shard_id}},
                UpdateExpression="SET epoch = if_not_exists(epoch, :zero) + :one, #o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":owner": {"S": owner}},
                ReturnValues="ALL_NEW",
            ),
            what="claim manifest",
        )
        return manifest_from_item(decode_item(response["Attributes"]))

    def begin_batch(self, claimed: Manifest, **batch: Any) -> Manifest:
        """Record the batch about to be written; ``FencedError`` if the shard was claimed since."""
        manifest = Manifest(**{**manifest_fields(claimed), **batch})
        try:
            with_retries(
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=encode_item(manifest_fields(manifest)),
                    ConditionExpression="epoch = :epoch AND #o = :owner",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":epoch": {"N": str(claimed.epoch)}, ":owner": {"S": claimed.owner}},
                ),
                what="PutItem manifest",
            )
        except ConditionFailedError as exc:
            raise FencedError(f"{claimed.shard_id}: claimed by another worker since epoch {claimed.epoch}") from exc
        return manifest


def manifest_from_item(item: Mapping[str, Any]) -> Manifest:
    """A manifest from its decoded item, in either layout."""
    fields = {_LEGACY_NAMES.get(name, name): value for name, value in item.items()}
    return Manifest(**{name: fields[name] for name in Manifest.__slots__ if name in fields})


def manifest_fields(m: Manifest) -> dict[str, Any]:
    """The item of a manifest, in the current layout."""
    return {name: getattr(m, name) for name in Manifest.__slots__}
