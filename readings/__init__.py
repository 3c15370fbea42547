"""The wire contract shared by the box, the bridge and the consumer."""

from readings.decode import Decoded, Rejection, decode_record
from readings.errors import Reason, WattstreamError
from readings.models import (
    SCHEMA_VERSION,
    Message,
    Reading,
    RuleRecord,
    WireReading,
    thing_from_topic,
    to_rfc3339,
    to_ts_ms,
    topic_for,
)

__all__ = [
    "SCHEMA_VERSION",
    "Decoded",
    "Message",
    "Reading",
    "Reason",
    "Rejection",
    "RuleRecord",
    "WattstreamError",
    "WireReading",
    "decode_record",
    "thing_from_topic",
    "to_rfc3339",
    "to_ts_ms",
    "topic_for",
]
