"""Alert events in DynamoDB (the outbox, which is also the active state) and on SNS.

A flush that fired or cleared alerts (``batcher.alerts``) records them before its checkpoint,
then publishes them and marks them sent; a flush without alerts makes no request here.

Items, in the aggregates table:

- an alert that fires and clears (``silent``, ``power_high``, ``budget``): one item per device and
  kind, ``device_id = "alerts#"``, ``bucket = "a#<device>#<kind>"``, holding the device's last
  alert of that kind: ``fired_ms``, ``values``, ``active`` (true until it clears, then
  ``cleared_ms`` and the clearing values). The next alert of the kind overwrites it. So the
  fleet's active alerts are one Query of one partition (``active_alerts``), a device's one
  Query of at most three items, and no history piles up there;
- a one-shot ``register`` event: ``device_id = <device>``, ``bucket = "a#<hour>#register.<flag>"``,
  among the device's own items (``a#`` sorts before its ``d#`` and ``h#`` buckets, and readers
  of those take only their own prefixes).

Both carry ``pending``: the ids of their events not yet published, and the writer stamps of the
aggregates (``w``, ``s``, ``sinks.aggregates``). Each item is written with one conditional
PutItem whose condition is the writer's verdict itself: the same shard and batch find it
*applied* (a replay), a later batch of the shard or a descendant shard *fenced*; anything
else is written. A flush then publishes each unsent event and removes its id from
``pending`` (one UpdateItem per item, conditional on the stamps still being this batch's).

Exactly once, and what remains. A crash after the put and before the publish: the replay
finds the put applied, its ids still pending, and publishes them. A crash after the mark: the
replay finds nothing pending and publishes nothing. What remains is the window between
Publish returning and the mark: a crash there publishes the event again on the replay, with
the same body and the same ``event_id`` (a function of the device, the alert, its firing time
and fired/cleared). Subscribers drop what they have seen by ``event_id``; on a FIFO topic
(an ARN ending in ``.fifo``) the message carries ``MessageDeduplicationId`` = SHA-256 of the
event id and ``MessageGroupId`` = the device, so SNS itself drops a copy sent within its
five-minute deduplication window, which a replay (a restart, a lease moving) falls within.

Without a topic (``WATTSTREAM_ALERTS_TOPIC_ARN`` empty) events are recorded and stay pending:
``active_alerts`` and the items still say what fired. A publish that fails after the retries
fails the flush: the shard stops and its replay publishes, so an SNS outage delays the shard
instead of losing an alert.

Cost: a stateful alert event is one PutItem and one UpdateItem (an item under 1 KB: one write
unit each) and one SNS Publish; a register event the same in its device's partition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from batcher.alerts import REGISTER, AlertEvent
from readings.errors import ConditionFailedError, FencedError, SinkError
from readings.models import to_rfc3339
from sinks.aggregates import BATCH, WRITER, Writer
from sinks.dynamo import batch_get, decode_item, encode_item, query_items, with_retries

ALERTS_PARTITION = "alerts#"
PENDING = "pending"
MESSAGE_VERSION = 1


def item_key(event: AlertEvent) -> tuple[str, str]:
    """The item holding ``event``: the alert's in ``alerts#``, a register event's in its device's partition."""
    if event.kind == REGISTER:
        return event.device_id, f"a#{event.fired_ms:013d}#{event.name}"
    return ALERTS_PARTITION, f"a#{event.device_id}#{event.kind}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One outbox item and the events of the batch it records."""

    key: tuple[str, str]
    body: Mapping[str, Any]
    events: tuple[AlertEvent, ...]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(e.event_id for e in self.events)

    def item(self, writer: Writer, pending: Iterable[str]) -> dict[str, Any]:
        return {
            "device_id": self.key[0],
            "bucket": self.key[1],
            **self.body,
            PENDING: set(pending),
            WRITER: writer.shard_id,
            BATCH: writer.marker,
        }


@dataclass(frozen=True, slots=True)
class Recorded:
    entry: Entry
    unsent: frozenset[str]
    """The entry's events not published yet."""
    replayed: bool
    """The item was found written by this very batch (an earlier attempt of it)."""


def entries(events: Sequence[AlertEvent]) -> list[Entry]:
    """The outbox items of a batch's events: each alert's item as its last event left it."""
    grouped: dict[tuple[str, str], list[AlertEvent]] = {}
    for event in events:
        grouped.setdefault(item_key(event), []).append(event)
    out = []
    for key, group in grouped.items():
        last = group[-1]
        body: dict[str, Any] = {
            "device": last.device_id,
            "kind": last.kind,
            "fired_ms": last.fired_ms,
            "values": dict(last.values),
        }
        if last.flag is not None:
            body["flag"] = last.flag
        else:
            body["active"] = last.event == "fired"
            if last.event == "cleared":
                body["cleared_ms"] = last.at_ms
        out.append(Entry(key, body, tuple(group)))
    return out


def verdict_condition(writer: Writer) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``Writer.verdict`` as a condition expression: true exactly when the verdict is ``write``."""
    names = {"#w": WRITER, "#s": BATCH}
    values: dict[str, Any] = {":w": {"S": writer.shard_id}, ":s": {"S": writer.marker}}
    other = "#w <> :w"
    if writer.descendants:
        placeholders = []
        for i, shard in enumerate(sorted(writer.descendants)):
            values[f":d{i}"] = {"S": shard}
            placeholders.append(f":d{i}")
        other = f"(#w <> :w AND NOT (#w IN ({', '.join(placeholders)})))"
    return f"attribute_not_exists(#s) OR (#w = :w AND #s < :s) OR {other}", names, values


def outcome_of(writer: Writer, entry: Entry, stored: Mapping[str, Any] | None) -> Recorded:
    """What a refused put means: applied by this batch (its unsent ids), or a fence."""
    verdict = writer.verdict(stored)
    if verdict == "applied":
        assert stored is not None
        return Recorded(entry, frozenset(stored.get(PENDING, ())) & entry.ids, replayed=True)
    if verdict == "fenced":
        assert stored is not None
        raise FencedError(f"{entry.key}: written by {stored.get(WRITER)} at {stored.get(BATCH)}")
    raise SinkError(f"{entry.key}: changed while it was written")


class AlertOutbox:
    """The outbox items in the aggregates table (see the module docstring)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def record(self, writer: Writer, batch: Sequence[Entry]) -> list[Recorded]:
        """Put each entry's item (one conditional PutItem each); ``FencedError`` for a later writer's."""
        out = []
        condition, names, values = verdict_condition(writer)
        for entry in batch:
            item = encode_item(entry.item(writer, entry.ids))
            try:
                with_retries(
                    lambda item=item: self._client.put_item(  # type: ignore[misc]
                        TableName=self._table,
                        Item=item,
                        ConditionExpression=condition,
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    ),
                    what=f"PutItem {entry.key[0]}/{entry.key[1]}",
                )
            except ConditionFailedError as exc:
                stored = decode_item(exc.item) if exc.item else self._get(entry.key)
                out.append(outcome_of(writer, entry, stored))
                continue
            out.append(Recorded(entry, entry.ids, replayed=False))
        return out

    def mark_sent(self, writer: Writer, entry: Entry, event_ids: Iterable[str]) -> bool:
        """Remove the ids from the item's ``pending``; False when a later write replaced the item."""
        ids = sorted(event_ids)
        if not ids:
            return True
        try:
            with_retries(
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=encode_item({"device_id": entry.key[0], "bucket": entry.key[1]}),
                    UpdateExpression="DELETE #p :ids",
                    ConditionExpression="#w = :w AND #s = :s",
                    ExpressionAttributeNames={"#p": PENDING, "#w": WRITER, "#s": BATCH},
                    ExpressionAttributeValues={
                        ":ids": {"SS": ids},
                        ":w": {"S": writer.shard_id},
                        ":s": {"S": writer.marker},
                    },
                ),
                what=f"UpdateItem {entry.key[0]}/{entry.key[1]}",
            )
        except ConditionFailedError:
            return False
        return True

    def _get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return batch_get(self._client, self._table, [{"device_id": key[0], "bucket": key[1]}]).get(key)


# -- the message ------------------------------------------------------------------------------


def _rendered(values: Mapping[str, Any]) -> dict[str, Any]:
    """Times as RFC 3339 (``last_heard_ms`` -> ``last_heard``), a day as its date."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "day_ms" and value is not None:
            out["day"] = datetime.fromtimestamp(int(value) / 1000, tz=UTC).strftime("%Y-%m-%d")
        elif name.endswith("_ms") and value is not None:
            out[name.removesuffix("_ms")] = to_rfc3339(int(value))
        else:
            out[name] = value
    return out


def message(event: AlertEvent) -> dict[str, Any]:
    """The SNS message of an event (``README.md``, Alerts, shows one)."""
    return {
        "v": MESSAGE_VERSION,
        "event_id": event.event_id,
        "device_id": event.device_id,
        "kind": event.kind,
        "event": event.event,
        "fired_at": to_rfc3339(event.fired_ms),
        "cleared_at": to_rfc3339(event.at_ms) if event.event == "cleared" else None,
        "values": _rendered(event.values),
    }


def deduplication_id(event: AlertEvent) -> str:
    """SNS FIFO's ``MessageDeduplicationId``: up to 128 characters, so a digest of the event id."""
    return hashlib.sha256(event.event_id.encode("utf-8")).hexdigest()


def publish_request(topic_arn: str, event: AlertEvent) -> dict[str, Any]:
    """The keyword arguments of SNS ``Publish`` for ``event``."""
    request: dict[str, Any] = {
        "TopicArn": topic_arn,
        "Message": orjson.dumps(message(event)).decode("utf-8"),
        "MessageAttributes": {
            name: {"DataType": "String", "StringValue": value}
            for name, value in (("kind", event.kind), ("event", event.event), ("device_id", event.device_id))
        },
    }
    if topic_arn.endswith(".fifo"):
        request["MessageGroupId"] = event.device_id
        request["MessageDeduplicationId"] = deduplication_id(event)
    return request


class SnsNotifier:
    """Publishes alert events to one SNS topic."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def publish(self, event: AlertEvent) -> None:
        request = publish_request(self.topic_arn, event)
        with_retries(lambda: self._client.publish(**request), what=f"Publish {event.event_id}")


# -- reading the active alerts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    device_id: str
    kind: str
    fired_ms: int
    values: Mapping[str, Any]

    @property
    def event_id(self) -> str:
        """The id of the ``fired`` event (as in its SNS message)."""
        return f"{self.device_id}#{self.kind}#{self.fired_ms}#fired"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the message's terms (times RFC 3339)."""
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "fired_at": to_rfc3339(self.fired_ms),
            "event_id": self.event_id,
            "values": _rendered(self.values),
        }


def active_from_items(items: Iterable[Mapping[str, Any]]) -> dict[str, list[ActiveAlert]]:
    """Device -> its active alerts, oldest first, from decoded items of the ``alerts#`` partition."""
    out: dict[str, list[ActiveAlert]] = {}
    for item in items:
        if item.get("device_id") != ALERTS_PARTITION or not item.get("active"):
            continue
        alert = ActiveAlert(str(item["device"]), str(item["kind"]), int(item["fired_ms"]), item.get("values") or {})
        out.setdefault(alert.device_id, []).append(alert)
    for alerts in out.values():
        alerts.sort(key=lambda a: (a.fired_ms, a.kind))
    return dict(sorted(out.items()))


def active_alerts(
    client: Any, table: str, device_ids: Iterable[str] | None = None, *, consistent: bool = False
) -> dict[str, list[ActiveAlert]]:
    """The active alerts of the fleet, or of ``device_ids``: device -> alerts, oldest first.

    The fleet: one paginated Query of the ``alerts#`` partition (one item per device and kind that
    ever fired, a few hundred bytes each). Given devices: one Query each, of at most three items
    (0.5 read units eventually consistent). Never a Scan.
    """
    if device_ids is None:
        return active_from_items(_query(client, table, None, consistent))
    items: list[dict[str, Any]] = []
    for device_id in dict.fromkeys(device_ids):
        items += _query(client, table, device_id, consistent)
    return active_from_items(items)


def _query(client: Any, table: str, device_id: str | None, consistent: bool) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "device_id = :p",
        "ExpressionAttributeValues": {":p": {"S": ALERTS_PARTITION}},
        "ConsistentRead": consistent,
    }
    if device_id is not None:
        kwargs["KeyConditionExpression"] += " AND begins_with(#b, :d)"
        kwargs["ExpressionAttributeNames"] = {"#b": "bucket"}
        kwargs["ExpressionAttributeValues"][":d"] = {"S": f"a#{device_id}#"}
    return query_items(client, what="Query alerts", **kwargs)
