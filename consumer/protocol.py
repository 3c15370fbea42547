"""The flush/checkpoint protocol of one shard: the one place that commits a batch.

A batch is committed in this order, and only this order:

Step 1. Manifest: the shard's item in the consumer-state table records the batch (its first and
        last sequence numbers, the snapshot before it and the one it will write), conditional on
        this worker's claim of the shard (fencing).
Step 2. Raw archive and dead letters: S3 objects under keys derived from the batch.
Step 3. DynamoDB: the buckets the batch closed (each created once), corrections of buckets
        closed before, and the live values of the devices that changed.
Step 4. Alerts (``consumer.alerting``): the events the batch fired or cleared, each recorded in
        its outbox item, then published and marked sent. Nothing when there are none.
Step 5. Snapshot: every device's state after the batch (alerts included), the one S3 object
        Step 1 named.
Step 6. KCL checkpoint at the batch's last sequence number. Only now is the batch done.

A crash anywhere in 1-6 leaves a manifest past the checkpoint. The next owner starts from the
snapshot before the batch, rebuilds exactly that batch (the replay boundary ends it at the
manifest's last sequence number) and commits it again: the same keys get the same bytes, and
every DynamoDB write this batch had made already is found and skipped; an alert already
published is not published again (``sinks.alerts``: all but a crash between Publish and its mark).

``Fenced`` means another worker owns the shard: the manifest refused our claim, an item was
written by a later batch of the shard or by a shard that replaced it, or the checkpoint found
the lease gone. Nothing more is written and nothing is checkpointed; the owner replays.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from amazon_kclpy.checkpoint_error import CheckpointError

from batcher import BatchStats, DeviceState, FlushTrigger, RegisterRules, compute_batch
from batcher.alerts import AlertEvent, AlertRules, Limits, evaluate
from batcher.ledger import Ledger, settle
from consumer.alerting import Delivery, NotifierPort, OutboxPort, deliver
from consumer.lineage import Lineage
from consumer.records import PendingRecord
from readings.errors import FencedError, WattstreamError
from sinks.aggregates import Writer, WriteResult
from sinks.archive import dead_letter_key, raw_key
from sinks.manifest import Manifest
from sinks.ports import AggregatePort, ArchivePort, LivePort, ManifestPort, SnapshotPort
from sinks.position import position_marker
from sinks.snapshot import snapshot_key

log = structlog.get_logger("wattstream.consumer")


@dataclass(slots=True)
class ShardMemory:
    """What the processor knows of its devices between batches; durable as the shard's snapshot."""

    states: dict[str, DeviceState] = field(default_factory=dict)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    state_key: str | None = None
    """The snapshot this memory was loaded from or last written to."""

    def to_doc(self) -> dict[str, Any]:
        return {
            d: {"state": s.to_dict(), "ledger": self.ledgers.get(d, Ledger()).to_dict()} for d, s in self.states.items()
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], state_key: str | None) -> ShardMemory:
        memory = cls(state_key=state_key)
        memory.merge_doc(doc)
        return memory

    def merge_doc(self, doc: Mapping[str, Any]) -> None:
        for device_id, entry in doc.items():
            self.states[device_id] = DeviceState.from_dict(entry.get("state"))
            self.ledgers[device_id] = Ledger.from_dict(entry.get("ledger"))


@dataclass(frozen=True, slots=True)
class Stores:
    manifests: ManifestPort
    archive: ArchivePort
    snapshots: SnapshotPort
    aggregates: AggregatePort
    live: LivePort
    outbox: OutboxPort | None = None
    """Alert events (``sinks.alerts``); None: alerts are kept in the state only."""
    notifier: NotifierPort | None = None
    """The alert topic; None: events are recorded in the outbox, not published."""


@dataclass(frozen=True, slots=True)
class Writes:
    """What a commit wrote to DynamoDB (the manifest not included)."""

    buckets: WriteResult
    live_items: int
    live_wcu: float
    dead_letters: list[dict[str, Any]]
    snapshot_bytes: int
    alerts: Delivery = field(default_factory=Delivery)


@dataclass(frozen=True, slots=True)
class Committed:
    last_sequence_number: str
    stats: BatchStats
    writes: Writes
    memory: ShardMemory
    """The shard's memory after the batch."""


@dataclass(frozen=True, slots=True)
class Fenced:
    reason: str


def commit(
    batch: list[PendingRecord],
    *,
    claimed: Manifest,
    memory: ShardMemory,
    stores: Stores,
    lineage: Lineage,
    rules: RegisterRules,
    checkpointer: Any,
    trigger: FlushTrigger,
    alert_rules: AlertRules | None = None,
    limits: Mapping[str, Limits] | None = None,
) -> Committed | Fenced:
    """Commit one batch (see the module docstring); ``memory`` is not modified.

    ``alert_rules`` None: no alerts. ``limits``: the devices' own thresholds from now on (the
    batch itself is judged by those its devices' state holds).
    """
    shard_id = claimed.shard_id
    first, last = batch[0].sequence_number, batch[-1].sequence_number
    readings = [reading for record in batch for reading in record.readings]
    result = compute_batch(readings, memory.states, rules)
    settled = settle(result, memory.ledgers)
    states = {**memory.states, **result.states}
    events: list[AlertEvent] = []
    if alert_rules is not None:
        arrivals = [(r.arrival_ms, [x.device_id for x in r.readings]) for r in batch if r.readings]
        alerting = evaluate(arrivals, readings, result, memory.states, memory.ledgers, alert_rules, limits)
        events = alerting.events
        for device_id, alerts in alerting.states.items():
            states[device_id] = dataclasses.replace(states[device_id], alerts=alerts)
    after = ShardMemory(states, {**memory.ledgers, **settled.ledgers}, snapshot_key(shard_id, last))
    writer = Writer(shard_id, position_marker(last), lineage.descendants)
    try:
        # Step 1. The manifest, conditional on our claim.
        key = raw_key(shard_id, first, last, batch[0].arrival_ms)
        stores.manifests.begin_batch(
            claimed,
            first_sequence_number=first,
            last_sequence_number=last,
            records=len(batch),
            raw_key=key,
            trigger=str(trigger),
            prev_state_key=memory.state_key,
            state_key=after.state_key,
        )
        # From here to the checkpoint a crash leaves a batch to replay (chaos tests aim here).
        log.info("batch_begun", first_sequence_number=first, last_sequence_number=last, records=len(batch))
        # Step 2. Raw records and dead letters, under keys derived from the batch.
        stores.archive.put(key, (r.raw_line(shard_id) for r in batch))
        dead = [line for r in batch if (line := r.dead_letter_line(shard_id)) is not None]
        if dead:
            stores.archive.put(dead_letter_key(shard_id, first, last, batch[0].arrival_ms), dead)
        # Step 3. Closed buckets, corrections, live values; each write skipped if this batch made it.
        buckets = stores.aggregates.write_closed(writer, settled.closed)
        buckets.add(stores.aggregates.correct(writer, settled.corrections))
        live_items, live_wcu = stores.live.write(shard_id, writer.marker, settled.live, ancestors=lineage.ancestors)
        # Step 4. Alert events: recorded, published, marked sent; a replay skips what was done.
        delivery = deliver(stores.outbox, stores.notifier, writer, events)
        # Step 5. The snapshot of every device's state after the batch.
        assert after.state_key is not None
        snapshot_bytes = stores.snapshots.put(after.state_key, shard_id, last, after.to_doc())
    except FencedError as exc:
        return Fenced(str(exc))
    # Step 6. The checkpoint; only now is the batch done.
    try:
        _checkpoint(checkpointer, last)
    except FencedError as exc:
        return Fenced(str(exc))
    _retire(stores.snapshots, memory.state_key, keep=after.state_key)
    return Committed(last, result.stats, Writes(buckets, live_items, live_wcu, dead, snapshot_bytes, delivery), after)


def _checkpoint(checkpointer: Any, sequence_number: str, attempts: int = 5) -> None:
    for attempt in range(attempts):
        try:
            checkpointer.checkpoint(sequence_number)
            return
        except CheckpointError as exc:
            if exc.value == "ShutdownException":
                # The lease moved while we flushed: the new owner replays this batch and skips
                # the writes we made.
                raise FencedError("lease lost before the checkpoint") from exc
            if exc.value != "ThrottlingException" or attempt == attempts - 1:
                raise WattstreamError(f"checkpoint failed: {exc.value}") from exc
            time.sleep(0.2 * 2**attempt)


def _retire(snapshots: SnapshotPort, old_key: str | None, *, keep: str | None) -> None:
    """Delete the snapshot before the committed batch: no replay can need it any more."""
    if old_key is None or old_key == keep:
        return
    try:
        snapshots.delete(old_key)
    except Exception as exc:  # noqa: BLE001 - a left-over snapshot costs storage, not correctness
        log.warning("snapshot_delete_failed", key=old_key, error=repr(exc)[:300])
