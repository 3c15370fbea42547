"""The store wattstream used before the shard owned its devices' state: the cost baseline.

``bench.fleet_cost`` measures it in the same run as the current design. Per flush it reads
each device's ``latest`` item and the items of every bucket the batch touches, and writes each
of them back: about three reads and three writes per device per flush. Kept verbatim (only
this paragraph is new) so the comparison is with the code as it ran.

Hourly/daily aggregates and each device's ``latest`` item, applied exactly once per batch.

Every item remembers, per shard, the last batch applied to it (``applied#<shard>``, the
batch's last sequence number zero-padded so DynamoDB compares it as a number). A write is
conditional on that marker being older than the batch, so:

- a batch replayed after a crash skips the items its first attempt already wrote;
- a zombie worker still flushing a batch the new owner has moved past cannot overwrite.

The ``latest`` item keeps the device state before the batch (``prev_state``) beside the state
after it: when a replayed batch finds its own marker there, it starts again from
``prev_state``, so the replay computes exactly the updates of the first attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from batcher import BatchStats, BucketAggregate, DeviceState, RegisterRules, compute_batch
from readings.errors import FencedError, SinkError
from readings.models import Reading, to_rfc3339
from sinks.dynamo import batch_get, encode_item, with_retries

LATEST = "latest"
SEQ_WIDTH = 64


def seq_marker(sequence_number: str | int) -> str:
    """A Kinesis sequence number as a fixed-width string that sorts like the number."""
    return str(int(sequence_number)).zfill(SEQ_WIDTH)


def applied_attr(shard_id: str) -> str:
    return f"applied#{shard_id}"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    stats: BatchStats
    items_written: int
    items_skipped: int
    """Items an earlier attempt of the same batch had already written."""
    consumed_wcu: float = 0.0
    """Write capacity units DynamoDB reported for the writes."""


class AggregateStore:
    """Applies batches of readings to the aggregates table. Thread-safe; one per process."""

    def __init__(self, client: Any, table: str, rules: RegisterRules, *, workers: int = 8) -> None:
        self._client = client
        self._table = table
        self._rules = rules
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ddb-write")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def apply(self, shard_id: str, last_sequence_number: str, readings: Sequence[Reading]) -> ApplyResult:
        """Apply one batch whose last record has ``last_sequence_number``.

        Raises ``FencedError`` if a later batch of the shard was applied already (another
        worker owns the shard now) and ``SinkError`` if the table keeps failing.
        """
        marker = seq_marker(last_sequence_number)
        attr = applied_attr(shard_id)
        devices = sorted({r.device_id for r in readings})
        latest = batch_get(self._client, self._table, ({"device_id": d, "bucket": LATEST} for d in devices))

        prior: dict[str, DeviceState] = {}
        for device_id in devices:
            item = latest.get((device_id, LATEST))
            if item is None:
                continue
            applied = item.get(attr, "")
            if applied > marker:
                raise FencedError(f"{device_id}: batch {applied} of {shard_id} is newer than {marker}")
            prior[device_id] = DeviceState.from_dict(item.get("prev_state" if applied == marker else "state"))

        result = compute_batch(readings, prior, self._rules)
        existing = batch_get(self._client, self._table, ({"device_id": d, "bucket": b} for d, b in result.aggregates))

        puts: list[dict[str, Any]] = []
        skipped = 0
        for (device_id, bucket), delta in result.aggregates.items():
            old = existing.get((device_id, bucket))
            if old is not None and old.get(attr, "") >= marker:
                skipped += 1
                continue
            merged = BucketAggregate.from_dict(old or {}).merge(delta)
            puts.append(self._aggregate_item(device_id, bucket, merged, attr, marker))
        for device_id, state in result.states.items():
            item = latest.get((device_id, LATEST))
            if item is not None and item.get(attr, "") >= marker:
                skipped += 1
                continue
            if device_id in prior and state.to_dict() == prior[device_id].to_dict():
                continue  # only duplicates of this device: nothing to write
            puts.append(self._latest_item(device_id, state, prior.get(device_id), attr, marker))

        outcomes = list(self._pool.map(lambda item: self._put(item, attr, marker), puts))
        written = sum(1 for ok, _ in outcomes if ok)
        capacity = sum(units for _, units in outcomes)
        return ApplyResult(result.stats, written, skipped + len(puts) - written, capacity)

    def _put(self, item: dict[str, Any], attr: str, marker: str) -> tuple[bool, float]:
        """(written, consumed write capacity units) of one conditional put."""

        # UpdateItem, not PutItem: the item keeps the markers of other shards (a device moves
        # to a child shard when its shard is split), so a late writer of the parent shard is
        # still refused by its own marker.
        values = encode_item({k: v for k, v in item.items() if k not in ("device_id", "bucket", attr)})
        names = {f"#f{i}": name for i, name in enumerate(values)}
        update = "SET #a = :m, " + ", ".join(f"#f{i} = :f{i}" for i in range(len(values)))

        def call() -> dict[str, Any]:
            return self._client.update_item(
                TableName=self._table,
                Key={"device_id": {"S": item["device_id"]}, "bucket": {"S": item["bucket"]}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#a) OR #a < :m",
                ExpressionAttributeNames={**names, "#a": attr},
                ExpressionAttributeValues={**{f":f{i}": v for i, v in enumerate(values.values())}, ":m": {"S": marker}},
                ReturnConsumedCapacity="TOTAL",
            )

        try:
            response = with_retries(call, what=f"PutItem {item['device_id']}/{item['bucket']}")
        except SinkError as exc:  # the condition failing is data, not an error
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False, 0.0
            raise
        return True, float(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))

    @staticmethod
    def _aggregate_item(device_id: str, bucket: str, agg: BucketAggregate, attr: str, marker: str) -> dict[str, Any]:
        item: dict[str, Any] = {"device_id": device_id, "bucket": bucket, attr: marker, **agg.to_dict()}
        if agg.power_samples:
            item["power_mean_w"] = agg.power_sum_w / agg.power_samples
        return item

    @staticmethod
    def _latest_item(
        device_id: str, state: DeviceState, before: DeviceState | None, attr: str, marker: str
    ) -> dict[str, Any]:
        newest = state.newest
        item: dict[str, Any] = {
            "device_id": device_id,
            "bucket": LATEST,
            attr: marker,
            "state": state.to_dict(),
            "prev_state": (before or DeviceState()).to_dict(),
        }
        if newest is not None:
            item.update(
                seq=newest.seq,
                ts_ms=newest.ts_ms,
                ts=to_rfc3339(newest.ts_ms),
                energy_register_wh=newest.energy_wh,
                power_w=state.newest_power_w,
                suspect=state.register.suspect is not None,
            )
        return item
