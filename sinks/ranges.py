"""A device's closed hours and days over a range of time: read them, replace them item by item.

``wattstream rebuild`` recomputes a range of buckets and then makes a table hold them: it reads
what the table holds for each device, and puts or deletes each item that differs. Every change
is conditional on the item's writer pair (``w``, ``s``, see ``sinks.aggregates``) being the one
the rebuild read, so a consumer that corrects an item meanwhile is never overwritten: the
change is refused and reported, and the rebuild can be run again.

The items are those of ``sinks.aggregates`` (``bucket_item`` plus the writer pair); this module
adds no layout of its own. Tables a rebuild creates (a comparison table, its staging table)
are made here too, since the consumer's image ships no provisioning code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batcher.buckets import day_key, hour_key
from readings.errors import ConditionFailedError, SinkError
from sinks.aggregates import BATCH, WRITER
from sinks.dynamo import encode_item, with_retries
from sinks.read import bucket_range

DAY_MS = 86_400_000


def bucket_bounds(first_ms: int, end_ms: int) -> tuple[tuple[str, str], tuple[str, str]]:
    """The hour keys and the day keys (lowest, highest) of buckets starting in [first_ms, end_ms).

    ``first_ms`` and ``end_ms`` are UTC midnights.
    """
    last_ms = end_ms - 1
    return (hour_key(first_ms), hour_key(last_ms)), (day_key(first_ms), day_key(last_ms))


@dataclass(frozen=True, slots=True)
class Change:
    """Make the stored item ``(device_id, bucket)`` be ``item`` (None: no item), if it is still ``seen``."""

    device_id: str
    bucket: str
    item: Mapping[str, Any] | None
    seen: Mapping[str, Any] | None
    """The stored item the change was planned against (None: there was none)."""


@dataclass(slots=True)
class ReplaceResult:
    written: int = 0
    deleted: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    """Items changed by someone else since they were read: left as they are."""
    consumed_wcu: float = 0.0

    def add(self, other: ReplaceResult) -> None:
        self.written += other.written
        self.deleted += other.deleted
        self.refused.extend(other.refused)
        self.consumed_wcu += other.consumed_wcu


def condition_on(seen: Mapping[str, Any] | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The DynamoDB condition that the stored item is still ``seen`` as far as its writer pair goes."""
    if seen is None:
        return "attribute_not_exists(device_id)", {}, {}
    if BATCH not in seen:
        return "attribute_exists(device_id) AND attribute_not_exists(#s)", {"#s": BATCH}, {}
    values = {":w": {"S": str(seen.get(WRITER, ""))}, ":s": {"S": str(seen[BATCH])}}
    return "#w = :w AND #s = :s", {"#w": WRITER, "#s": BATCH}, values


class BucketRanges:
    """Reads and replaces ranges of a device's bucket items in one aggregates table."""

    def __init__(self, client: Any, table: str, *, workers: int = 8) -> None:
        self._client = client
        self.table = table
        self._workers = workers

    def read(self, device_id: str, first_ms: int, end_ms: int) -> dict[str, dict[str, Any]]:
        """The device's hour and day items starting in [first_ms, end_ms), by bucket (consistent reads)."""
        out: dict[str, dict[str, Any]] = {}
        for low, high in bucket_bounds(first_ms, end_ms):
            for item in self._query(device_id, low, high):
                out[item["bucket"]] = item
        return out

    def replace(self, changes: Sequence[Change]) -> ReplaceResult:
        """Apply each change on its condition; refused ones are listed, not raised."""
        result = ReplaceResult()
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="ddb-replace") as pool:
            for one in pool.map(self._apply, changes):
                result.add(one)
        return result

    def _apply(self, change: Change) -> ReplaceResult:
        condition, names, values = condition_on(change.seen)
        key = {"device_id": {"S": change.device_id}, "bucket": {"S": change.bucket}}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ConditionExpression": condition,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        what = f"{change.device_id}/{change.bucket}"
        try:
            if change.item is None:
                response = with_retries(lambda: self._client.delete_item(Key=key, **kwargs), what=f"DeleteItem {what}")
            else:
                item = encode_item(change.item)
                response = with_retries(lambda: self._client.put_item(Item=item, **kwargs), what=f"PutItem {what}")
        except ConditionFailedError:
            return ReplaceResult(refused=[(change.device_id, change.bucket)])
        units = float(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
        if change.item is None:
            return ReplaceResult(deleted=1, consumed_wcu=units)
        return ReplaceResult(written=1, consumed_wcu=units)

    def _query(self, device_id: str, low: str, high: str) -> list[dict[str, Any]]:
        try:
            return bucket_range(self._client, self.table, device_id, low, high)
        except SinkError as exc:
            if _missing_table(exc):
                return []  # a comparison table not created yet holds nothing
            raise


def _missing_table(exc: SinkError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def ensure_table(client: Any, table: str, timeout_s: float = 120) -> bool:
    """Create an aggregates table (on demand, key ``device_id`` + ``bucket``) unless it exists.

    True when it was created now.
    """
    created = True
    try:
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "device_id", "AttributeType": "S"},
                {"AttributeName": "bucket", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "device_id", "KeyType": "HASH"},
                {"AttributeName": "bucket", "KeyType": "RANGE"},
            ],
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise SinkError(f"CreateTable {table}: {exc}") from exc
        created = False
    deadline = time.monotonic() + timeout_s
    while client.describe_table(TableName=table)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise SinkError(f"table {table} not ACTIVE after {timeout_s} s")
        time.sleep(0.5)
    return created


def drop_table(client: Any, table: str, *, wait: bool = False) -> None:
    """Delete a table; a missing one is no error. ``wait``: return once it is gone."""
    try:
        client.delete_table(TableName=table)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise SinkError(f"DeleteTable {table}: {exc}") from exc
        return
    if wait:
        client.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
