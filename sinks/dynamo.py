"""DynamoDB plumbing shared by the stores: value conversion, batched reads, retried writes.

Numbers go to DynamoDB as ``Decimal(repr(x))``: the shortest text that reads back as the same
float, so a value written, read and written again is bit-for-bit stable (replays depend on it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from readings.errors import ConditionFailedError, SinkError

T = TypeVar("T")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

BATCH_GET_LIMIT = 100
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "SlowDown",
        "InternalError",
        "RequestTimeout",
    }
)


def _plain_to_ddb(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _plain_to_ddb(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain_to_ddb(v) for v in value]
    return value


def _ddb_to_plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A float was written as its repr, which always holds a "." or an exponent; an int never.
        text = str(value)
        return float(value) if "." in text or "E" in text or "e" in text else int(value)
    if isinstance(value, Mapping):
        return {k: _ddb_to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ddb_to_plain(v) for v in value]
    return value


def encode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python (str, int, float, bool, dict, list) -> DynamoDB attribute values."""
    return {k: _serializer.serialize(_plain_to_ddb(v)) for k, v in item.items() if v is not None}


def decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values -> plain Python (integral numbers as int, others as float)."""
    return {k: _ddb_to_plain(_deserializer.deserialize(v)) for k, v in item.items()}


def with_retries(call: Callable[[], T], *, what: str, attempts: int = 8, base_s: float = 0.05) -> T:
    """Run ``call``, retrying throttling and server errors with jittered exponential backoff.

    A failed condition raises ``ConditionFailedError`` at once (with the stored item when the
    request asked for it); any other refusal, or a failure that outlasts the retries, ``SinkError``.

    boto3's own retries run first (adaptive mode); these cover what outlasts them, so a
    throttled table slows the flush down instead of failing it.
    """
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailedError(f"{what}: the condition failed", exc.response.get("Item")) from exc
            if code not in RETRYABLE_CODES or attempt == attempts - 1:
                raise SinkError(f"{what}: {code or exc}") from exc
        time.sleep(random.uniform(0, base_s * 2**attempt))
    raise AssertionError("unreachable")


def query_items(client: Any, *, what: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a Query returns, decoded, over all its pages (``kwargs`` as for ``client.query``)."""
    items: list[dict[str, Any]] = []
    while True:
        response = with_retries(lambda: client.query(**kwargs), what=what)
        items.extend(decode_item(raw) for raw in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def batch_get(
    client: Any, table: str, keys: Iterable[Mapping[str, str]], *, attempts: int = 10
) -> dict[tuple[str, str], dict[str, Any]]:
    """Consistent reads of many ``{"device_id", "bucket"}`` keys; missing items are absent.

    Unprocessed keys (throttling, the 16 MB response cap) are asked again with backoff.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    pending = [encode_item(k) for k in keys]
    for start in range(0, len(pending), BATCH_GET_LIMIT):
        request = {table: {"Keys": pending[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}}
        for attempt in range(attempts):
            response = with_retries(lambda: client.batch_get_item(RequestItems=request), what="BatchGetItem")  # noqa: B023 - called within this iteration
            for raw in response.get("Responses", {}).get(table, []):
                item = decode_item(raw)
                found[(item["device_id"], item["bucket"])] = item
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(table):
                break
            request = unprocessed
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
        else:
            raise SinkError(f"BatchGetItem on {table}: keys still unprocessed after {attempts} attempts")
    return found
