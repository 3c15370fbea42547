"""Prometheus metrics of the consumer.

KCL runs one Python process per shard, so the metrics use prometheus-client's multiprocess
mode: every processor writes to files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
``wattstream consume`` before the daemon starts) and the ``consume`` process serves them all
on one port per host. Without that variable (unit tests) they are ordinary in-process metrics.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

NS = "wattstream"

RECORDS = Counter(f"{NS}_records", "Kinesis records taken from the stream.", ["shard"])
READINGS_STORED = Counter(f"{NS}_readings_stored", "Readings counted into the aggregates.")
READINGS_DUPLICATE = Counter(f"{NS}_readings_duplicate", "Readings already counted before (same device and seq).")
READINGS_LATE = Counter(f"{NS}_readings_late", "Readings older than their device's newest.")
READINGS_LATE_RESPLIT = Counter(
    f"{NS}_readings_late_resplit", "Late readings that re-split a counted span (the rest are samples only)."
)
REJECTED = Counter(f"{NS}_rejected", "Records or readings refused, by reason code.", ["reason"])
DEAD_LETTERS = Counter(f"{NS}_dead_letters", "Entries written to the dead-letter archive.")
REGISTER_FLAGS = Counter(f"{NS}_register_flags", "Meter register anomalies: reset, glitch, jump.", ["flag"])
SEQ_GAPS = Counter(f"{NS}_seq_gaps", "Seqs found missing between a device's consecutive readings.")
SEQ_GAPS_FILLED = Counter(f"{NS}_seq_gaps_filled", "Missing seqs a late reading filled afterwards.")
ENERGY = Counter(f"{NS}_energy_wh", "Energy counted into the aggregates, in Wh (import register).")
ENERGY_EXPORT = Counter(f"{NS}_energy_export_wh", "Energy counted on export registers, in Wh.")
BATCHES = Counter(f"{NS}_batches_flushed", "Batches flushed, by trigger.", ["trigger"])
BATCH_RECORDS = Histogram(
    f"{NS}_batch_records", "Records per flushed batch.", buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000)
)
FLUSH_SECONDS = Histogram(
    f"{NS}_flush_duration_seconds",
    "Time from manifest to checkpoint.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DDB_WRITES = Counter(f"{NS}_dynamodb_writes", "DynamoDB items written.", ["table"])
DDB_WCU = Counter(f"{NS}_dynamodb_consumed_wcu", "Write capacity units the item writes consumed.")
DDB_SKIPPED = Counter(f"{NS}_dynamodb_writes_skipped", "Item writes skipped: an earlier attempt had applied them.")
S3_PUTS = Counter(f"{NS}_s3_puts", "S3 objects written.", ["kind"])
ALERTS = Counter(f"{NS}_alerts", "Alert events recorded (each once, replays not counted).", ["kind", "event"])
CHECKPOINTS = Counter(f"{NS}_checkpoints", "KCL checkpoints made after a flush.")
ERRORS = Counter(f"{NS}_processor_errors", "Failures of the processor, by kind.", ["kind"])
MILLIS_BEHIND = Gauge(
    f"{NS}_millis_behind_latest",
    "How far the shard's reader is behind the tip.",
    ["shard"],
    multiprocess_mode="livemostrecent",
)
READING_AGE = Histogram(
    f"{NS}_reading_age_seconds",
    "Age of a reading (since its meter time) when its batch was stored.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600, 21600, 86400),
)
QUERYABLE_LATENCY = Histogram(
    f"{NS}_reading_to_queryable_seconds",
    "From a record's arrival on the stream to its batch's checkpoint (the record is queryable).",
    buckets=(0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900, 3600),
)


def serve(port: int) -> None:
    """Serve every processor's metrics on ``port`` (multiprocess mode) from this process."""
    if port == 0:
        return
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, registry=registry)
    else:
        start_http_server(port)
