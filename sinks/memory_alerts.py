"""The alert outbox and an SNS topic in memory (``sinks.alerts``'s promises), for tests.

``MemoryOutbox`` keeps the very wire items ``AlertOutbox`` writes, in a ``MemoryTable`` that
may be a ``MemoryBackend``'s aggregates table; its conditions are the writer verdicts.
``MemoryTopic`` keeps every Publish request and, for a FIFO topic, delivers one message per
deduplication id (SNS drops a copy within its five-minute window; these tests stay within it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from batcher.alerts import AlertEvent
from readings.errors import SinkError
from sinks.aggregates import BATCH, WRITER, Writer
from sinks.alerts import (
    ALERTS_PARTITION,
    PENDING,
    ActiveAlert,
    Entry,
    Recorded,
    active_from_items,
    outcome_of,
    publish_request,
)
from sinks.dynamo import decode_item, encode_item
from sinks.memory import MemoryTable, Wire, WriteRefusedError


class MemoryOutbox:
    def __init__(self, table: MemoryTable | None = None) -> None:
        self.table = table if table is not None else MemoryTable()

    def record(self, writer: Writer, batch: Sequence[Entry]) -> list[Recorded]:
        out = []
        for entry in batch:

            def may_write(stored: Wire | None) -> bool:
                return writer.verdict(None if stored is None else decode_item(stored)) == "write"

            try:
                self.table.put(encode_item(entry.item(writer, entry.ids)), condition=may_write)
            except WriteRefusedError as refused:
                out.append(outcome_of(writer, entry, None if refused.item is None else decode_item(refused.item)))
                continue
            out.append(Recorded(entry, entry.ids, replayed=False))
        return out

    def mark_sent(self, writer: Writer, entry: Entry, event_ids: Iterable[str]) -> bool:
        ids = set(event_ids)
        if not ids:
            return True
        with self.table.lock:
            stored = self.table.get(entry.key)
            if stored is None or (stored.get(WRITER, {}).get("S"), stored.get(BATCH, {}).get("S")) != (
                writer.shard_id,
                writer.marker,
            ):
                return False
            left = set(stored.get(PENDING, {}).get("SS", ())) - ids
            self.table.update(
                entry.key, set_={PENDING: {"SS": sorted(left)}} if left else {}, remove=() if left else (PENDING,)
            )
        return True

    def active(self, device_ids: Iterable[str] | None = None) -> dict[str, list[ActiveAlert]]:
        """As ``sinks.alerts.active_alerts``."""
        wanted = None if device_ids is None else set(device_ids)
        items = [
            decode_item(wire)
            for (partition, _), wire in self.table.wire_items().items()
            if partition == ALERTS_PARTITION
        ]
        return active_from_items(i for i in items if wanted is None or i.get("device") in wanted)

    def items(self) -> list[dict[str, Any]]:
        """Every outbox item, decoded: the ``alerts#`` ones and the register events."""
        return [decode_item(wire) for (_, bucket), wire in self.table.wire_items().items() if bucket.startswith("a#")]


@dataclass
class MemoryTopic:
    """Every Publish request; ``messages`` what subscribers get."""

    topic_arn: str = "arn:aws:sns:us-east-1:000000000000:wattstream-alerts"
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False
    """Every publish raises ``SinkError`` (SNS unreachable past the retries)."""

    def publish(self, event: AlertEvent) -> None:
        if self.fail:
            raise SinkError(f"Publish {event.event_id}: EndpointConnectionError")
        self.requests.append(publish_request(self.topic_arn, event))

    def messages(self) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for request in self.requests:
            dedup = request.get("MessageDeduplicationId")
            if dedup is not None:
                if dedup in seen:
                    continue
                seen.add(dedup)
            out.append(orjson.loads(request["Message"]))
        return out
