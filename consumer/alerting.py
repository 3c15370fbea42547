"""The alert step of a flush, and the devices' own thresholds from the registry.

``deliver`` runs inside ``consumer.protocol.commit`` after the live view and before the
snapshot (Step 4 there): it records the batch's events in the outbox, publishes those not yet
published and marks them sent (``sinks.alerts`` says what each step guarantees). A batch
without events costs nothing here.

``Thresholds`` holds every registered device's ``power_limit_w`` and ``daily_budget_kwh``: one
Query of the registry when the shard starts, another at most every ``refresh_s`` after that, and
if the registry cannot be read the thresholds already held stay in force. What a batch is judged
by is stored in its devices' state (``batcher.alerts``), so a replay judges as the first attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from batcher.alerts import AlertEvent, Limits
from consumer import metrics
from readings.models import to_rfc3339
from sinks.aggregates import Writer
from sinks.alerts import Entry, Recorded, entries
from sinks.ports import RegistryPort

log = structlog.get_logger("wattstream.consumer")


class OutboxPort(Protocol):
    def record(self, writer: Writer, batch: Sequence[Entry]) -> list[Recorded]:
        """Put each entry's item on the writer's verdict; the events not yet published."""

    def mark_sent(self, writer: Writer, entry: Entry, event_ids: Any) -> bool:
        """Remove the ids from the item's pending ones (False: a later write replaced it)."""


class NotifierPort(Protocol):
    def publish(self, event: AlertEvent) -> None:
        """Publish the event's message; raises when it cannot (after its retries)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    events: int = 0
    recorded: int = 0
    """Events whose item this attempt wrote (the rest were written by an earlier attempt)."""
    published: int = 0
    items: int = 0


def deliver(
    outbox: OutboxPort | None, notifier: NotifierPort | None, writer: Writer, events: Sequence[AlertEvent]
) -> Delivery:
    """Record, publish and mark the batch's events; one log line and one count per event."""
    if not events or outbox is None:
        return Delivery(len(events))
    recorded = outbox.record(writer, entries(events))
    published = fresh = 0
    for outcome in recorded:
        sent: list[str] = []
        for event in outcome.entry.events:
            unsent = event.event_id in outcome.unsent
            if notifier is not None and unsent:
                notifier.publish(event)
                sent.append(event.event_id)
            if not outcome.replayed:
                fresh += 1
                metrics.ALERTS.labels(event.kind, event.event).inc()
            log.info(
                f"alert_{event.event}",
                device_id=event.device_id,
                kind=event.kind,
                alert=event.name,
                event_id=event.event_id,
                fired_at=to_rfc3339(event.fired_ms),
                at=to_rfc3339(event.at_ms),
                values=dict(event.values),
                published=event.event_id in sent,
                replayed=outcome.replayed,
            )
        if sent and not outbox.mark_sent(writer, outcome.entry, sent):
            log.warning("alert_mark_superseded", key=list(outcome.entry.key))
        published += len(sent)
    return Delivery(len(events), fresh, published, len(recorded))


class Thresholds:
    """Every registered device's own thresholds, refreshed from the registry at most every ``refresh_s``."""

    def __init__(
        self,
        registry: RegistryPort | None,
        refresh_s: float,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        self._clock_s = clock_s
        self._limits: dict[str, Limits] | None = None
        self._loaded_s: float | None = None

    def current(self) -> Mapping[str, Limits] | None:
        """The thresholds (None without a registry, or before the first successful read)."""
        if self._registry is None:
            return None
        now = self._clock_s()
        if self._loaded_s is None or now - self._loaded_s >= self._refresh_s:
            self._loaded_s = now
            try:
                infos = self._registry.list()
            except Exception as exc:  # noqa: BLE001 - alerts keep the thresholds they had; readings never wait on the registry
                metrics.ERRORS.labels("registry").inc()
                log.warning("registry_unreadable", error=repr(exc)[:300])
            else:
                self._limits = {
                    info.device_id: Limits(info.power_limit_w, info.daily_budget_kwh)
                    for info in infos
                    if info.power_limit_w is not None or info.daily_budget_kwh is not None
                }
        return self._limits
