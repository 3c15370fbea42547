"""Prometheus metrics of the bridge (``wattstream bridge --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_IN = Counter("wattstream_bridge_messages_total", "MQTT messages received from the broker.")
RULE_FAILED = Counter(
    "wattstream_bridge_rule_failed_total",
    "Messages the rule could not make a record of (reason: bridge.rule); dead-lettered, then acked.",
    ["reason"],
)
CALLBACK_ERRORS = Counter(
    "wattstream_bridge_callback_errors_total",
    "Exceptions caught in a paho callback (on_message: the message is dead-lettered, then acked).",
    ["callback"],
)
DEAD_LETTERS = Counter(
    "wattstream_bridge_dead_letters_total",
    "Messages written to the dead-letter file, by reason (rule failures and callback errors).",
    ["reason"],
)
RECORDS_PUT = Counter("wattstream_bridge_records_put_total", "Records Kinesis accepted.")
PUT_ERRORS = Counter(
    "wattstream_bridge_put_errors_total", "Failed PutRecords calls (kind=call) or entries (kind=entry).", ["kind"]
)
ACKS = Counter("wattstream_bridge_acks_total", "PUBACKs sent to the broker after Kinesis accepted.")
STALE = Counter(
    "wattstream_bridge_stale_messages_total",
    "Messages of a dropped connection, left unacked so the broker redelivers them.",
)
BATCH_RECORDS = Histogram(
    "wattstream_bridge_batch_records",
    "Records per PutRecords batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500),
)
