"""Prometheus metrics of the box (served by ``wattstream device run --metrics-port``).

Every metric carries ``device_id``: one process runs one box, or N virtual boxes in
``wattstream device simulate``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

METER_READS = Counter("wattstream_device_meter_reads_total", "Successful meter reads.", ["device_id"])
METER_ERRORS = Counter(
    "wattstream_device_meter_errors_total",
    "Meter reads that failed, by reason (timeout, garbage, connection, protocol).",
    ["device_id", "reason"],
)
SPOOL_WRITES = Counter("wattstream_device_spool_writes_total", "Readings written to the spool.", ["device_id"])
SPOOL_READINGS = Gauge("wattstream_device_spool_readings", "Readings waiting in the spool.", ["device_id"])
SPOOL_DROPPED = Counter(
    "wattstream_device_spool_dropped_readings_total",
    "Oldest readings discarded because the spool reached its cap.",
    ["device_id"],
)
MESSAGES_PUBLISHED = Counter(
    "wattstream_device_messages_published_total", "MQTT messages handed to the client.", ["device_id"]
)
MESSAGES_ACKED = Counter(
    "wattstream_device_messages_acked_total", "MQTT messages the broker acknowledged (PUBACK).", ["device_id"]
)
READINGS_ACKED = Counter(
    "wattstream_device_readings_acked_total", "Readings removed from the spool after PUBACK.", ["device_id"]
)
MESSAGE_BYTES = Histogram(
    "wattstream_device_message_bytes",
    "Payload size of published messages (IoT Core bills per started 5 KB).",
    ["device_id"],
    buckets=(256, 512, 1024, 2048, 3072, 4096, 4608, 5120),
)
CONNECTED = Gauge("wattstream_device_mqtt_connected", "1 while the MQTT session is up.", ["device_id"])
CONNECT_FAILURES = Counter(
    "wattstream_device_mqtt_connect_failures_total", "Failed MQTT connection attempts.", ["device_id"]
)
METER_MESSAGES_DROPPED = Counter(
    "wattstream_device_meter_messages_dropped_total",
    "Messages from a meter dropped before they became a reading (a DSMR telegram with a bad CRC, garbage), by reason.",
    ["meter", "reason"],
)
