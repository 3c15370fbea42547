"""Closed hours and days in DynamoDB, each written once, and the corrections they receive.

A bucket item is written when its device's time base passes the bucket's end (see
``batcher.ledger``); what arrives for it afterwards is a correction, added to the stored item.
Each item remembers the last write: ``w`` (the shard that made it) and ``s`` (that batch's last
sequence number, zero-padded so it compares as a number). Before changing an item, a writer
looks at that pair:

- its own shard and its own batch: the write was made by an earlier attempt of this batch (a
  replay after a crash): skipped;
- its own shard and a later batch, or a shard descended from it (after a split or merge): the
  shard moved on without this worker, which is a zombie: ``FencedError``;
- anything else (nothing yet, an ancestor shard, an earlier batch): written, conditional on the
  pair it saw, so two writers can never both succeed.

Two attributes whatever the resharding history, so the markers never grow.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batcher import BucketAggregate
from readings.errors import ConditionFailedError, FencedError, SinkError
from sinks.dynamo import batch_get, decode_item, encode_item, with_retries

WRITER = "w"
BATCH = "s"


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes: a shard, the batch (by its last sequence number), the shards descended from it."""

    shard_id: str
    marker: str
    descendants: frozenset[str] = field(default_factory=frozenset)

    def verdict(self, item: Mapping[str, Any] | None) -> str:
        """``write``, ``applied`` (this batch wrote it already) or ``fenced``, from the stored pair."""
        if item is None or BATCH not in item:
            return "write"
        writer, batch = item.get(WRITER), str(item[BATCH])
        if writer == self.shard_id:
            return "applied" if batch == self.marker else "fenced" if batch > self.marker else "write"
        return "fenced" if writer in self.descendants else "write"


@dataclass(slots=True)
class WriteResult:
    written: int = 0
    skipped: int = 0
    """Writes an earlier attempt of the same batch had already made."""
    consumed_wcu: float = 0.0
    read_units: float = 0.0

    def add(self, other: WriteResult) -> None:
        self.written += other.written
        self.skipped += other.skipped
        self.consumed_wcu += other.consumed_wcu
        self.read_units += other.read_units


def bucket_item(device_id: str, bucket: str, agg: BucketAggregate) -> dict[str, Any]:
    """The stored form of one device's bucket (plain values; ``encode_item`` makes it DynamoDB's)."""
    item: dict[str, Any] = {"device_id": device_id, "bucket": bucket, **agg.to_dict()}
    if agg.power_samples:
        item["power_mean_w"] = agg.power_sum_w / agg.power_samples
    return item


class AggregateStore:
    """Writes closed buckets and corrections to the aggregates table. Thread-safe; one per process."""

    def __init__(self, client: Any, table: str, *, workers: int = 8) -> None:
        self._client = client
        self._table = table
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ddb-write")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def write_closed(self, writer: Writer, closed: Mapping[tuple[str, str], BucketAggregate]) -> WriteResult:
        """Create each closed bucket's item; one that exists already is handled as a correction."""
        outcomes = list(self._pool.map(lambda kv: self._create(writer, *kv), closed.items()))
        existing = {key: agg for (key, agg), created in zip(closed.items(), outcomes, strict=False) if created is None}
        result = WriteResult()
        for created in outcomes:
            if created is not None:
                result.add(created)
        if existing:
            result.add(self.correct(writer, existing))
        return result

    def correct(self, writer: Writer, deltas: Mapping[tuple[str, str], BucketAggregate]) -> WriteResult:
        """Add each delta to its stored bucket (read, merge, write back conditionally)."""
        result = WriteResult()
        pending = dict(deltas)
        for _ in range(5):
            if not pending:
                return result
            stored = batch_get(self._client, self._table, ({"device_id": d, "bucket": b} for d, b in pending))
            result.read_units += len(pending)  # strongly consistent reads of items under 4 KB
            outcomes = list(
                self._pool.map(lambda kv: self._merge(writer, kv[0], kv[1], stored.get(kv[0])), pending.items())  # noqa: B023 - called within this iteration
            )
            retry = {}
            for (key, agg), outcome in zip(pending.items(), outcomes, strict=False):
                if outcome is None:
                    retry[key] = agg  # changed between our read and our write: read again
                else:
                    result.add(outcome)
            pending = retry
        raise SinkError(f"corrections of {len(pending)} items kept conflicting")

    # -- one item ---------------------------------------------------------------------------

    def _create(self, writer: Writer, key: tuple[str, str], agg: BucketAggregate) -> WriteResult | None:
        """The item written (None: it exists already and needs a merge)."""
        item = self._stamped(bucket_item(*key, agg), writer)
        try:
            response = self._put(item, "attribute_not_exists(#s)", {"#s": BATCH}, {})
        except _RefusedError as refused:
            verdict = writer.verdict(refused.item)
            if verdict == "applied":
                return WriteResult(skipped=1)
            if verdict == "fenced":
                raise FencedError(
                    f"{key}: written by {refused.item.get(WRITER)} at {refused.item.get(BATCH)}"
                ) from None
            return None
        return WriteResult(written=1, consumed_wcu=_units(response))

    def _merge(
        self, writer: Writer, key: tuple[str, str], delta: BucketAggregate, stored: Mapping[str, Any] | None
    ) -> WriteResult | None:
        verdict = writer.verdict(stored)
        if verdict == "applied":
            return WriteResult(skipped=1)
        if verdict == "fenced":
            assert stored is not None
            raise FencedError(f"{key}: written by {stored.get(WRITER)} at {stored.get(BATCH)}")
        merged = delta if stored is None else BucketAggregate.from_dict(dict(stored)).merge(delta)
        item = self._stamped(bucket_item(*key, merged), writer)
        if stored is None or BATCH not in stored:
            condition, names, values = "attribute_not_exists(#s)", {"#s": BATCH}, {}
        else:
            condition = "#w = :w AND #s = :s"
            names = {"#w": WRITER, "#s": BATCH}
            values = {":w": {"S": str(stored[WRITER])}, ":s": {"S": str(stored[BATCH])}}
        try:
            response = self._put(item, condition, names, values)
        except _RefusedError:
            return None
        return WriteResult(written=1, consumed_wcu=_units(response))

    @staticmethod
    def _stamped(item: dict[str, Any], writer: Writer) -> dict[str, Any]:
        return {**item, WRITER: writer.shard_id, BATCH: writer.marker}

    def _put(self, item: dict[str, Any], condition: str, names: dict[str, str], values: dict[str, Any]) -> Any:
        def call() -> Any:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "Item": encode_item(item),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ReturnConsumedCapacity": "TOTAL",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            if values:
                kwargs["ExpressionAttributeValues"] = values
            return self._client.put_item(**kwargs)

        try:
            return with_retries(call, what=f"PutItem {item['device_id']}/{item['bucket']}")
        except ConditionFailedError as exc:
            raise _RefusedError(decode_item(exc.item) if exc.item else self._get(item)) from None

    def _get(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        found = batch_get(self._client, self._table, [{"device_id": item["device_id"], "bucket": item["bucket"]}])
        return found.get((item["device_id"], item["bucket"]))


class _RefusedError(Exception):
    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item or {}


def _units(response: Mapping[str, Any]) -> float:
    return float(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
