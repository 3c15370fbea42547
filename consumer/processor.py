"""The KCL record processor of one shard: batch in memory, commit, carry on.

The MultiLangDaemon starts one such process per shard it holds and talks to it over
stdin/stdout. The processor owns its shard's devices: their state lives in memory, loaded once
at ``initialize`` from the shard's snapshot (or, for a shard born of a split or merge, from its
parents' final snapshots), and ``consumer.protocol.commit`` makes it durable with each batch.

The processor is in one phase at a time:

- ``REPLAYING``: a crash interrupted a batch (its manifest lies past the checkpoint); records are
  gathered until exactly that batch's last sequence number, then it is committed again;
- ``RUNNING``: records are batched by the policy (every X seconds or Y records or so many bytes);
- ``FENCED``: another worker owns the shard; everything is ignored until the lease goes;
- ``STOPPED``: shutdown was requested or the shard ended; the last batch was committed.

Lease lost: the batch is dropped, nothing is checkpointed (the new owner replays it).

amazon_kclpy swallows exceptions raised by a processor and carries on with the next records,
which would checkpoint past a batch that was never stored. So a commit that cannot complete
ends the process instead; the daemon restarts the shard and the manifest drives the replay.
The only such causes are the stores being unreachable: bad input never gets this far (each
record's failure is its own dead letter).
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import structlog
from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor

from batcher import BatchBuffer, FlushTrigger, batch
from consumer import metrics
from consumer.alerting import Thresholds
from consumer.lineage import Lineage, shard_lineage
from consumer.protocol import Committed, Fenced, ShardMemory, Stores, commit
from consumer.records import MAX_REJECTIONS_LISTED, PendingRecord
from consumer.settings import Settings
from consumer.tuning import tune_gc
from readings import Reason, Rejection, decode, decode_record
from sinks.aggregates import AggregateStore
from sinks.alerts import AlertOutbox, SnsNotifier
from sinks.archive import Archive
from sinks.live import LiveView, hash_key
from sinks.manifest import Manifest, ManifestStore
from sinks.ports import RegistryPort
from sinks.registry import RegistryStore
from sinks.snapshot import SnapshotStore

__all__ = ["MAX_REJECTIONS_LISTED", "PendingRecord", "Phase", "ShardProcessor", "build"]

log = structlog.get_logger("wattstream.consumer")

EXIT_FLUSH_FAILED = 70
LATENCY_SAMPLES = 100


class Phase(StrEnum):
    REPLAYING = "replaying"
    RUNNING = "running"
    FENCED = "fenced"
    STOPPED = "stopped"


def _fatal_on_error(callback: Callable[..., None]) -> Callable[..., None]:
    """End the process on any error of a KCL callback.

    amazon_kclpy swallows exceptions and carries on with the next records, which would
    checkpoint past records never stored. Exiting instead makes the daemon stop (it exits when
    a processor dies); the restarted worker replays from the checkpoint and the manifest.
    """

    @functools.wraps(callback)
    def guarded(self: ShardProcessor, *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception as exc:
            metrics.ERRORS.labels("fatal").inc()
            log.error("processor_failed", callback=callback.__name__, error=repr(exc), exc_info=True)
            raise SystemExit(EXIT_FLUSH_FAILED) from exc

    return guarded


class ShardProcessor(processor.RecordProcessorBase):
    def __init__(
        self,
        settings: Settings,
        *,
        stores: Stores | None,
        lineage_of: Callable[[str], Lineage] = Lineage,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        owner: str | None = None,
        registry: RegistryPort | None = None,
    ) -> None:
        self.settings = settings
        self._thresholds = Thresholds(registry, settings.alert_registry_refresh_s)
        self._stores = stores
        self._lineage_of = lineage_of
        self._clock_ms = clock_ms
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._future_tolerance_ms = int(settings.future_tolerance_s * 1000)
        self.shard_id = ""
        self.phase = Phase.RUNNING
        self.buffer: BatchBuffer[PendingRecord] = BatchBuffer(settings.batch_policy)
        self.memory = ShardMemory()
        self.lineage = Lineage("")
        self._claimed: Manifest | None = None
        self._replay_until: int | None = None
        self._replay_first: str | None = None

    @property
    def stores(self) -> Stores:
        assert self._stores is not None, "a processor without stores only decodes"
        return self._stores

    # -- KCL callbacks -------------------------------------------------------------------

    @_fatal_on_error
    def initialize(self, initialize_input: Any) -> None:
        """Called once before any records: claim the shard, load its devices, look for a replay."""
        self.shard_id = initialize_input.shard_id
        structlog.contextvars.bind_contextvars(shard=self.shard_id)
        # Without a claim there is no fencing and no replay: a failure here refuses the shard.
        self._claimed = claimed = self.stores.manifests.claim(self.shard_id, self._owner)
        self.lineage = self._lineage_of(self.shard_id)
        self._thresholds.current()  # the devices' alert thresholds: one Query of the registry
        checkpoint = initialize_input.sequence_number
        if claimed.pending_after(checkpoint):
            self.phase = Phase.REPLAYING
            self._replay_until = int(claimed.last_sequence_number or 0)
            self._replay_first = claimed.first_sequence_number
            self.memory = self._load(claimed.prev_state_key)
        elif claimed.state_key is not None:
            self.memory = self._load(claimed.state_key)
        else:
            self.memory = self._inherit()
        log.info(
            "shard_initialized",
            checkpoint=checkpoint,
            epoch=claimed.epoch,
            replay_until=claimed.last_sequence_number if self.phase is Phase.REPLAYING else None,
            devices=len(self.memory.states),
            parents=list(self.lineage.parents),
        )

    @_fatal_on_error
    def process_records(self, process_records_input: Any) -> None:
        """Called for every poll, with records or without (so a quiet shard still flushes)."""
        if self.phase in (Phase.FENCED, Phase.STOPPED):
            return
        checkpointer = process_records_input.checkpointer
        behind = process_records_input.millis_behind_latest
        if behind is not None:
            metrics.MILLIS_BEHIND.labels(self.shard_id).set(behind)
        records = process_records_input.records
        now_ms = self._clock_ms()
        if records:
            metrics.RECORDS.labels(self.shard_id).inc(len(records))
        for record in records:
            if self.phase is Phase.REPLAYING:
                self._replay(record, checkpointer, now_ms)
            else:
                self._add(record, now_ms)
                trigger = self.buffer.due(now_ms)
                if trigger is not None:
                    self._flush(checkpointer, trigger)
            if self.phase is Phase.FENCED:
                return
        # While replaying, only the boundary closes the batch: a batch cut anywhere else would
        # archive its records under a second key and apply them under another marker.
        if self.phase is Phase.RUNNING:
            trigger = self.buffer.due(now_ms)
            if trigger is not None:
                self._flush(checkpointer, trigger)

    @_fatal_on_error
    def lease_lost(self, lease_lost_input: Any) -> None:
        """Another worker owns the shard: drop the batch; the new owner replays it."""
        log.info("lease_lost", dropped_records=len(self.buffer))
        self.buffer.drain()
        self.phase = Phase.FENCED

    @_fatal_on_error
    def shard_ended(self, shard_ended_input: Any) -> None:
        """The shard was split or merged: store what is left, then checkpoint its end."""
        if self.phase is Phase.REPLAYING:
            self._close_replay(shard_ended_input.checkpointer)
        self._flush(shard_ended_input.checkpointer, FlushTrigger.SHARD_END)
        if self.phase is not Phase.FENCED:
            shard_ended_input.checkpointer.checkpoint()
            self.phase = Phase.STOPPED
            log.info("shard_ended")

    @_fatal_on_error
    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """The worker is stopping (SIGTERM): flush and checkpoint before the grace runs out."""
        if self.phase is Phase.REPLAYING:
            # Half a rebuilt batch must not be stored under new boundaries: the next owner
            # replays the interrupted batch whole.
            log.info("shutdown_during_replay", dropped_records=len(self.buffer))
            self.buffer.drain()
            self.phase = Phase.STOPPED
            return
        self._flush(shutdown_requested_input.checkpointer, FlushTrigger.SHUTDOWN)
        if self.phase is not Phase.FENCED:
            self.phase = Phase.STOPPED
        log.info("shutdown_flushed")

    # -- replay ----------------------------------------------------------------------------

    def _replay(self, record: Any, checkpointer: Any, now_ms: int) -> None:
        """Gather the interrupted batch again; commit it exactly at its last sequence number."""
        assert self._replay_until is not None and self._claimed is not None
        position = int(record.sequence_number)
        if not len(self.buffer) and self._replay_first not in (None, record.sequence_number):
            # Records expired from the stream, or the lease table was reset: the batch cannot
            # be rebuilt. Carry on from the state the interrupted batch left, if it got that
            # far (its records are duplicates there), and batch by the policy again.
            metrics.ERRORS.labels("replay_mismatch").inc()
            log.error("replay_mismatch", expected_first=self._replay_first, got=record.sequence_number)
            if self._claimed.state_key is not None:
                memory = self.stores.snapshots.get(self._claimed.state_key)
                if memory is not None:
                    self.memory = ShardMemory.from_doc(memory, self._claimed.state_key)
            self._end_replay()
            self._add(record, now_ms)
            return
        if position > self._replay_until:
            # The interrupted batch ended before this record: commit what was rebuilt, then
            # carry on normally.
            self._close_replay(checkpointer)
            if self.phase is Phase.RUNNING:
                self._add(record, now_ms)
            return
        self._add(record, now_ms)
        if position == self._replay_until:
            self._close_replay(checkpointer)

    def _close_replay(self, checkpointer: Any) -> None:
        self._end_replay()
        if len(self.buffer):
            self._flush(checkpointer, FlushTrigger.REPLAY)

    def _end_replay(self) -> None:
        self.phase = Phase.RUNNING
        self._replay_until = None
        self._replay_first = None

    # -- state -----------------------------------------------------------------------------

    def _load(self, key: str | None) -> ShardMemory:
        if key is None:
            return self._inherit()
        doc = self.stores.snapshots.get(key)
        if doc is None:
            # A manifest names a snapshot that is gone: devices start afresh (loudly).
            metrics.ERRORS.labels("snapshot_missing").inc()
            log.error("snapshot_missing", key=key)
            return ShardMemory()
        return ShardMemory.from_doc(doc, key)

    def _inherit(self) -> ShardMemory:
        """A new shard's devices: from its parents' final snapshots, those in its hash range."""
        memory = ShardMemory()
        for parent in self.lineage.parents:
            manifest = self.stores.manifests.read(parent)
            if manifest is None or manifest.state_key is None:
                continue
            doc = self.stores.snapshots.get(manifest.state_key) or {}
            memory.merge_doc({d: entry for d, entry in doc.items() if self.lineage.owns(hash_key(d))})
        return memory

    # -- the flush -----------------------------------------------------------------------

    def _add(self, record: Any, now_ms: int) -> None:
        pending = self._decode(record)
        self.buffer.add(pending, len(pending.data), now_ms)

    def _decode(self, record: Any) -> PendingRecord:
        data = record.binary_data  # amazon_kclpy decodes the base64 anew at every access
        arrival_ms = int(record.timestamp_millis)
        try:
            decoded = decode_record(
                data,
                fallback_received_ms=arrival_ms,
                future_tolerance_ms=self._future_tolerance_ms,
                partition_key=record.partition_key,
            )
            readings, rejections = decoded.readings, decoded.rejections
        except Exception as exc:  # noqa: BLE001 - one record's failure is its dead letter, never the shard's stop
            metrics.ERRORS.labels("decode").inc()
            readings = []
            rejections = [Rejection(Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"[:200])]
        return PendingRecord(record.sequence_number, record.partition_key, arrival_ms, data, readings, rejections)

    def _flush(self, checkpointer: Any, trigger: FlushTrigger) -> None:
        if self.phase is Phase.FENCED or not len(self.buffer):
            return
        assert self._claimed is not None
        batch = self.buffer.drain()
        started = time.perf_counter()
        outcome = commit(
            batch,
            claimed=self._claimed,
            memory=self.memory,
            stores=self.stores,
            lineage=self.lineage,
            rules=self.settings.register_rules,
            checkpointer=checkpointer,
            trigger=trigger,
            alert_rules=self.settings.alert_rules,
            limits=self._thresholds.current(),
        )
        if isinstance(outcome, Fenced):
            self.phase = Phase.FENCED
            metrics.ERRORS.labels("fenced").inc()
            log.warning("fenced", reason=outcome.reason, dropped_records=len(batch))
            return
        self.memory = outcome.memory
        try:
            _record_flush(
                self.settings, self.shard_id, trigger, batch, outcome, time.perf_counter() - started, self._clock_ms()
            )
        except Exception as exc:  # noqa: BLE001 - the batch is stored and checkpointed; only metrics failed
            log.warning("flush_metrics_failed", error=repr(exc))


def _record_flush(
    settings: Settings,
    shard_id: str,
    trigger: FlushTrigger,
    batch: list[PendingRecord],
    outcome: Committed,
    elapsed_s: float,
    now_ms: int,
) -> None:
    stats, writes = outcome.stats, outcome.writes
    dead = writes.dead_letters
    metrics.CHECKPOINTS.inc()  # a commit ends with its checkpoint
    metrics.BATCHES.labels(str(trigger)).inc()
    metrics.BATCH_RECORDS.observe(len(batch))
    metrics.FLUSH_SECONDS.observe(elapsed_s)
    alerts = writes.alerts
    metrics.DDB_WRITES.labels(settings.aggregates_table).inc(
        writes.buckets.written + writes.live_items + alerts.items + (alerts.items if alerts.published else 0)
    )
    metrics.DDB_WRITES.labels(settings.state_table).inc()
    metrics.DDB_SKIPPED.inc(writes.buckets.skipped)
    metrics.DDB_WCU.inc(writes.buckets.consumed_wcu + writes.live_wcu)
    metrics.S3_PUTS.labels("raw").inc()
    metrics.S3_PUTS.labels("state").inc()
    if dead:
        metrics.S3_PUTS.labels("dead_letter").inc()
    metrics.READINGS_STORED.inc(stats.stored)
    metrics.READINGS_DUPLICATE.inc(stats.duplicates)
    metrics.READINGS_LATE.inc(stats.late)
    metrics.READINGS_LATE_RESPLIT.inc(stats.late_resplit)
    metrics.SEQ_GAPS.inc(stats.seq_gaps)
    metrics.SEQ_GAPS_FILLED.inc(stats.seq_gaps_filled)
    metrics.ENERGY.inc(stats.energy_wh)
    metrics.ENERGY_EXPORT.inc(stats.export_wh)
    metrics.DEAD_LETTERS.inc(len(dead))
    rejected = _rejections_by_reason(batch)
    for reason, (count, _) in rejected.items():
        metrics.REJECTED.labels(reason).inc(count)
    for flag, count in stats.flags.items():
        metrics.REGISTER_FLAGS.labels(flag).inc(count)
    readings = [r for record in batch[-200:] for r in record.readings]
    for r in readings[-1000:]:
        metrics.READING_AGE.observe(max(0.0, (now_ms - r.ts_ms) / 1000))
    # Arrival to checkpoint, for at most LATENCY_SAMPLES records spread evenly over the batch
    # (the first and the last always): the histogram's shape without a write per record.
    step = max(1, -(-(len(batch) - 1) // (LATENCY_SAMPLES - 1)))
    for record in (*batch[:-1:step], batch[-1]):
        metrics.QUERYABLE_LATENCY.observe(max(0.0, (now_ms - record.arrival_ms) / 1000))
    log.info(
        "batch_flushed",
        trigger=str(trigger),
        records=len(batch),
        readings=stats.readings,
        stored=stats.stored,
        duplicates=stats.duplicates,
        late=stats.late,
        late_resplit=stats.late_resplit,
        seq_gaps=stats.seq_gaps,
        seq_gaps_filled=stats.seq_gaps_filled,
        rejected=sum(count for count, _ in rejected.values()),
        dead_letters=len(dead),
        energy_wh=round(stats.energy_wh, 3),
        export_wh=round(stats.export_wh, 3),
        items_written=writes.buckets.written + writes.live_items,
        items_skipped=writes.buckets.skipped,
        live_items=writes.live_items,
        snapshot_bytes=writes.snapshot_bytes,
        alert_events=alerts.events,
        alerts_published=alerts.published,
        first_sequence_number=batch[0].sequence_number,
        last_sequence_number=batch[-1].sequence_number,
        arrival_first_ms=batch[0].arrival_ms,
        arrival_last_ms=batch[-1].arrival_ms,
        committed_ms=now_ms,
        duration_ms=round(elapsed_s * 1000, 1),
    )
    # One line per reason and batch, whatever a box sends: the dead letters hold the rest.
    for reason, (count, (record, rejection)) in rejected.items():
        log.warning(
            "record_rejected",
            reason=reason,
            count=count,
            detail=rejection.detail,
            sequence_number=record.sequence_number,
            partition_key=record.partition_key[:256],
        )


def _rejections_by_reason(batch: list[PendingRecord]) -> dict[str, tuple[int, tuple[PendingRecord, Rejection]]]:
    """Per reason: how many rejections the batch holds, and its first (for the log line)."""
    out: dict[str, tuple[int, tuple[PendingRecord, Rejection]]] = {}
    for record in batch:
        for rejection in record.rejections:
            reason = str(rejection.reason)
            count, first = out.get(reason, (0, (record, rejection)))
            out[reason] = (count + 1, first)
    return out


def build(settings: Settings) -> ShardProcessor:
    """The processor wired to real clients (endpoints from the standard AWS variables)."""
    dynamodb, s3 = settings.client("dynamodb"), settings.client("s3")
    stores = Stores(
        manifests=ManifestStore(dynamodb, settings.state_table),
        archive=Archive(s3, settings.raw_bucket),
        snapshots=SnapshotStore(s3, settings.raw_bucket),
        aggregates=AggregateStore(dynamodb, settings.aggregates_table, workers=settings.flush_workers),
        live=LiveView(dynamodb, settings.aggregates_table, settings.live_groups),
        outbox=AlertOutbox(dynamodb, settings.aggregates_table),
        notifier=SnsNotifier(settings.client("sns"), settings.alerts_topic_arn) if settings.alerts_topic_arn else None,
    )
    kinesis = settings.client("kinesis")
    return ShardProcessor(
        settings,
        stores=stores,
        lineage_of=lambda shard: shard_lineage(kinesis, settings.stream_name, shard),
        registry=RegistryStore(dynamodb, settings.aggregates_table),
    )


def main() -> None:
    from readings.logs import configure

    # Shutdown is the daemon's to order (shutdown_requested, then the checkpoint). A SIGINT or
    # SIGTERM sent to the whole process group (Ctrl-C, `kill -- -PGID`) must not end this
    # process before the daemon asks for the last flush; when the daemon is gone, stdin ends
    # and so does this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = Settings()
    configure(settings.log_level, process="record_processor", pid=os.getpid())
    tune_gc()
    if not (batch.COMPILED and decode.COMPILED):
        structlog.get_logger().warning("hot_path_not_compiled", batcher=batch.COMPILED, decoder=decode.COMPILED)
    kcl.KCLProcess(build(settings)).run()


if __name__ == "__main__":
    main()
