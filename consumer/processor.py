"""The KCL record processor of one shard: batch in memory, flush, then checkpoint.

The MultiLangDaemon starts one such process per shard it holds and talks to it over
stdin/stdout. A flush runs in this order, and only this order:

1. ``begin_batch``: the manifest records the batch's first and last sequence numbers,
   conditional on this worker still owning the shard (fencing);
2. the raw records (and any dead letters) go to S3 under keys derived from the batch;
3. the aggregates and device states go to DynamoDB, each item conditional on the batch not
   being applied to it yet;
4. the KCL checkpoint moves to the batch's last sequence number. Only then is it done.

A crash anywhere in 1–4 leaves a manifest past the checkpoint. The next ``initialize`` of the
shard (here or on another worker) sees it and closes its first batch exactly at that manifest's
last sequence number, so the replay rebuilds the same batch: the same S3 keys are overwritten
with the same bytes and the items already written are skipped.

Lease lost: the batch is dropped, nothing is checkpointed (the new owner replays it).
Shard ended / shutdown requested: the batch is flushed, then checkpointed.

amazon_kclpy swallows exceptions raised by a processor and carries on with the next records,
which would checkpoint past a batch that was never stored. So a flush that cannot complete
ends the process instead; the daemon restarts the shard and the manifest drives the replay.
"""

from __future__ import annotations

import base64
import functools
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import structlog
from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor

from batcher import BatchBuffer, FlushTrigger
from consumer import metrics
from consumer.settings import Settings
from readings import Reading, Reason, Rejection, decode_record
from readings.errors import FencedError, WattstreamError
from sinks.aggregates import AggregateStore, ApplyResult
from sinks.archive import Archive, dead_letter_key, raw_key
from sinks.manifest import Manifest, ManifestStore

log = structlog.get_logger("wattstream.consumer")

EXIT_FLUSH_FAILED = 70
MAX_REJECTIONS_LISTED = 20


@dataclass(slots=True)
class PendingRecord:
    """A record taken from the stream, decoded, waiting for its batch's flush."""

    sequence_number: str
    partition_key: str
    arrival_ms: int
    data: bytes
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def raw_line(self, shard_id: str) -> dict[str, Any]:
        line: dict[str, Any] = {
            "shard_id": shard_id,
            "sequence_number": self.sequence_number,
            "partition_key": self.partition_key,
            "approximate_arrival_ms": self.arrival_ms,
        }
        try:
            line["data"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            line["data_b64"] = base64.b64encode(self.data).decode("ascii")
        return line

    def dead_letter_line(self, shard_id: str) -> dict[str, Any] | None:
        """The record's one dead-letter line, or None when nothing of it was rejected.

        The record's bytes are stored once, whatever the number of rejected readings; the
        first ``MAX_REJECTIONS_LISTED`` rejections are listed (reason, detail, reading index)
        and ``rejections_total`` counts them all. ``reason``, ``detail`` and ``reading_index``
        repeat the first one, so a query by reason needs no unnesting.
        """
        if not self.rejections:
            return None
        first = self.rejections[0]
        line = self.raw_line(shard_id)
        line.update(reason=str(first.reason), detail=first.detail, rejected_at_ms=self.arrival_ms)
        if first.index is not None:
            line["reading_index"] = first.index
        line["rejections_total"] = len(self.rejections)
        line["rejections"] = [
            {"reason": str(r.reason), "detail": r.detail, **({} if r.index is None else {"reading_index": r.index})}
            for r in self.rejections[:MAX_REJECTIONS_LISTED]
        ]
        return line


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
        aggregates: AggregateStore,
        manifests: ManifestStore,
        archive: Archive,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self._aggregates = aggregates
        self._manifests = manifests
        self._archive = archive
        self._clock_ms = clock_ms
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._future_tolerance_ms = int(settings.future_tolerance_s * 1000)
        self.shard_id = ""
        self.buffer: BatchBuffer[PendingRecord] = BatchBuffer(settings.batch_policy)
        self._claimed: Manifest | None = None
        self._replay_until: int | None = None
        self._replay_started = False
        self._fenced = False
        self._stopped = False

    # -- KCL callbacks -------------------------------------------------------------------

    @_fatal_on_error
    def initialize(self, initialize_input: Any) -> None:
        """Called once before any records: claim the shard, look for an interrupted batch."""
        self.shard_id = initialize_input.shard_id
        structlog.contextvars.bind_contextvars(shard=self.shard_id)
        # Without a claim there is no fencing and no replay: a failure here refuses the shard.
        self._claimed = self._manifests.claim(self.shard_id, self._owner)
        checkpoint = initialize_input.sequence_number
        if self._claimed.pending_after(checkpoint):
            self._replay_until = int(self._claimed.last_seq or 0)
        log.info(
            "shard_initialized",
            checkpoint=checkpoint,
            epoch=self._claimed.epoch,
            replay_until=self._claimed.last_seq if self._replay_until is not None else None,
        )

    @_fatal_on_error
    def process_records(self, process_records_input: Any) -> None:
        """Called for every poll, with records or without (so a quiet shard still flushes)."""
        if self._fenced or self._stopped:
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
            seq = int(record.sequence_number)
            if self._replay_until is not None and not self._replay_started:
                self._replay_started = True
                if self._claimed is not None and self._claimed.first_seq not in (None, record.sequence_number):
                    # Records expired from the stream, or the lease table was reset: the
                    # rebuilt batch cannot be the interrupted one. Say so loudly and batch by
                    # the policy again (items already holding newer batches skip the writes).
                    metrics.ERRORS.labels("replay_mismatch").inc()
                    log.error("replay_mismatch", expected_first=self._claimed.first_seq, got=record.sequence_number)
                    self._replay_until = None
            if self._replay_until is not None and seq > self._replay_until:
                # The interrupted batch ended before this record (or it expired from the
                # stream): close what was rebuilt, then carry on normally.
                if len(self.buffer):
                    self._flush(checkpointer, FlushTrigger.REPLAY)
                self._replay_until = None
            self.buffer.add(self._decode(record), len(record.binary_data), now_ms)
            if self._replay_until is not None:
                if seq == self._replay_until:
                    self._flush(checkpointer, FlushTrigger.REPLAY)
                    self._replay_until = None
            else:
                trigger = self.buffer.due(now_ms)
                if trigger is not None:
                    self._flush(checkpointer, trigger)
            if self._fenced:
                return
        # While replaying, only the boundary closes the batch: a batch cut anywhere else would
        # archive its records under a second key and apply them under another marker.
        if self._replay_until is None:
            trigger = self.buffer.due(now_ms)
            if trigger is not None:
                self._flush(checkpointer, trigger)

    @_fatal_on_error
    def lease_lost(self, lease_lost_input: Any) -> None:
        """Another worker owns the shard: drop the batch; the new owner replays it."""
        log.info("lease_lost", dropped_records=len(self.buffer))
        self.buffer.drain()

    @_fatal_on_error
    def shard_ended(self, shard_ended_input: Any) -> None:
        """The shard was split or merged: store what is left, then checkpoint its end."""
        self._flush(shard_ended_input.checkpointer, FlushTrigger.SHARD_END)
        if not self._fenced:
            shard_ended_input.checkpointer.checkpoint()
            log.info("shard_ended")

    @_fatal_on_error
    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """The worker is stopping (SIGTERM): flush and checkpoint before the grace runs out."""
        self._stopped = True
        if self._replay_until is not None:
            # Half a rebuilt batch must not be stored under new boundaries: the next owner
            # replays the interrupted batch whole.
            log.info("shutdown_during_replay", dropped_records=len(self.buffer))
            self.buffer.drain()
            return
        self._flush(shutdown_requested_input.checkpointer, FlushTrigger.SHUTDOWN)
        log.info("shutdown_flushed")

    # -- the flush -----------------------------------------------------------------------

    def _decode(self, record: Any) -> PendingRecord:
        data = record.binary_data
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
        if self._fenced or not len(self.buffer):
            return
        assert self._claimed is not None
        batch = self.buffer.drain()
        first, last = batch[0].sequence_number, batch[-1].sequence_number
        started = time.perf_counter()
        key = raw_key(self.shard_id, first, last, batch[0].arrival_ms)
        # Any other error leaves through _fatal_on_error: the process ends, nothing is
        # checkpointed past this batch, and the restarted worker replays it.
        try:
            self._manifests.begin_batch(
                self._claimed, first_seq=first, last_seq=last, records=len(batch), raw_key=key, trigger=str(trigger)
            )
            self._archive.put(key, (r.raw_line(self.shard_id) for r in batch))
            metrics.S3_PUTS.labels("raw").inc()
            dead = [line for r in batch if (line := r.dead_letter_line(self.shard_id)) is not None]
            if dead:
                self._archive.put(dead_letter_key(self.shard_id, first, last, batch[0].arrival_ms), dead)
                metrics.S3_PUTS.labels("dead_letter").inc()
            readings = [reading for r in batch for reading in r.readings]
            applied = self._aggregates.apply(self.shard_id, last, readings)
        except FencedError as exc:
            current = self._manifests.read(self.shard_id)
            if current is not None and (current.epoch, current.owner) == (self._claimed.epoch, self._claimed.owner):
                # Refused by a newer batch while nobody claimed the shard from us: the store and
                # the checkpoint disagree. Stopping beats idling on a lease we keep renewing.
                raise WattstreamError(f"newer data than our own batch, yet the shard is ours: {exc}") from exc
            self._fence(exc, len(batch))
            return
        try:
            self._checkpoint(checkpointer, last)
        except FencedError as exc:
            self._fence(exc, len(batch))
            return
        try:
            self._record_flush(trigger, batch, readings, dead, applied, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - the batch is stored and checkpointed; only metrics failed
            log.warning("flush_metrics_failed", error=repr(exc))

    def _fence(self, exc: FencedError, dropped_records: int) -> None:
        self._fenced = True
        metrics.ERRORS.labels("fenced").inc()
        log.warning("fenced", reason=str(exc), dropped_records=dropped_records)

    def _record_flush(self, trigger: FlushTrigger, batch: list[PendingRecord], readings: list[Reading],
                      dead: list[dict[str, Any]], applied: ApplyResult, elapsed_s: float) -> None:
        first, last = batch[0].sequence_number, batch[-1].sequence_number
        stats = applied.stats
        now_ms = self._clock_ms()
        metrics.BATCHES.labels(str(trigger)).inc()
        metrics.BATCH_RECORDS.observe(len(batch))
        metrics.FLUSH_SECONDS.observe(elapsed_s)
        metrics.DDB_WRITES.labels(self.settings.aggregates_table).inc(applied.items_written)
        metrics.DDB_WRITES.labels(self.settings.state_table).inc()
        metrics.DDB_SKIPPED.inc(applied.items_skipped)
        metrics.DDB_WCU.inc(applied.consumed_wcu)
        metrics.READINGS_STORED.inc(stats.stored)
        metrics.READINGS_DUPLICATE.inc(stats.duplicates)
        metrics.READINGS_LATE.inc(stats.late)
        metrics.ENERGY.inc(stats.energy_wh)
        metrics.DEAD_LETTERS.inc(len(dead))
        rejected = _rejections_by_reason(batch)
        for reason, (count, _) in rejected.items():
            metrics.REJECTED.labels(reason).inc(count)
        for flag, count in stats.flags.items():
            metrics.REGISTER_FLAGS.labels(flag).inc(count)
        for r in readings[-1000:]:
            metrics.READING_AGE.observe(max(0.0, (now_ms - r.ts_ms) / 1000))
        log.info(
            "batch_flushed",
            trigger=str(trigger),
            records=len(batch),
            readings=stats.readings,
            stored=stats.stored,
            duplicates=stats.duplicates,
            late=stats.late,
            rejected=sum(count for count, _ in rejected.values()),
            dead_letters=len(dead),
            energy_wh=round(stats.energy_wh, 3),
            items_written=applied.items_written,
            items_skipped=applied.items_skipped,
            first_seq=first,
            last_seq=last,
            duration_ms=round(elapsed_s * 1000, 1),
        )
        # One line per reason and batch, whatever a box sends: the dead letters hold the rest.
        for reason, (count, (record, rejection)) in rejected.items():
            log.warning("record_rejected", reason=reason, count=count, detail=rejection.detail,
                        sequence_number=record.sequence_number, partition_key=record.partition_key[:256])

    def _checkpoint(self, checkpointer: Any, sequence_number: str, attempts: int = 5) -> None:
        for attempt in range(attempts):
            try:
                checkpointer.checkpoint(sequence_number)
                metrics.CHECKPOINTS.inc()
                log.debug("checkpointed", sequence_number=sequence_number)
                return
            except CheckpointError as exc:
                if exc.value == "ShutdownException":
                    # The lease moved while we flushed: the new owner replays this batch and
                    # the items we wrote are skipped there.
                    raise FencedError("lease lost before the checkpoint") from exc
                if exc.value != "ThrottlingException" or attempt == attempts - 1:
                    raise WattstreamError(f"checkpoint failed: {exc.value}") from exc
                time.sleep(0.2 * 2**attempt)


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
    dynamodb = settings.client("dynamodb")
    return ShardProcessor(
        settings,
        aggregates=AggregateStore(
            dynamodb, settings.aggregates_table, settings.register_rules, workers=settings.flush_workers
        ),
        manifests=ManifestStore(dynamodb, settings.state_table),
        archive=Archive(settings.client("s3"), settings.raw_bucket),
    )


def main() -> None:
    from consumer.logs import configure

    settings = Settings()
    configure(settings.log_level, process="record_processor", pid=os.getpid())
    kcl.KCLProcess(build(settings)).run()


if __name__ == "__main__":
    main()
