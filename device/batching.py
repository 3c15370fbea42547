"""Edge batching: pack spooled readings into one wire-v1 message under a byte limit.

IoT Core meters publishes in 5 KB steps (a 5.1 KB message costs two), so the box fills each
message as close to ``max_bytes`` as possible without crossing it. The size is computed exactly
on the bytes that will be sent: the envelope plus one JSON fragment per reading, joined by
commas, so no message ever exceeds the limit.

When to send is ``BatchPolicy.ready``: ``max_readings`` readings are waiting, or the oldest
waiting reading is ``max_wait_s`` old, or the next reading would not fit any more.

A reading's optional values appear only when set, in a fixed order, so a box whose meter has no
export register publishes the very bytes it did before ``energy_export_wh`` existed. Two limits
hold for any policy: a message of one reading always fits (``max_bytes`` is at least
``MIN_MESSAGE_BYTES``, the largest reading any box can spool under the longest thing name), and
no message carries more readings than the consumer accepts (``readings.decode.MAX_READINGS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from device.spool import SpooledReading
from readings.decode import MAX_READINGS
from readings.errors import DeviceError
from readings.models import MAX_SEQ, MAX_TS_MS, SCHEMA_VERSION, to_rfc3339

IOT_BILLING_STEP_BYTES = 5 * 1024
_OPTIONAL = ("power_w", "voltage_v", "current_a", "pf", "energy_export_wh")
"""Written in this order after ``energy_wh``, each only when not None; new fields go last."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a message is ready and how big it may be."""

    max_readings: int = 50
    max_wait_s: float = 60.0
    max_bytes: int = IOT_BILLING_STEP_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_readings <= MAX_READINGS or self.max_wait_s < 0 or self.max_bytes < MIN_MESSAGE_BYTES:
            raise DeviceError(
                f"invalid batch policy {self}: max_readings 1..{MAX_READINGS}, max_wait_s >= 0,"
                f" max_bytes >= {MIN_MESSAGE_BYTES}"
            )

    def ready(self, waiting: Sequence[SpooledReading], now_ms: int, *, full: bool) -> bool:
        """Whether ``waiting`` (oldest first) should go out now; ``full`` = the bytes ran out."""
        if not waiting:
            return False
        if full or len(waiting) >= self.max_readings:
            return True
        return now_ms - waiting[0].ts_ms >= self.max_wait_s * 1000


@dataclass(frozen=True, slots=True)
class Packed:
    """One message ready to publish: its payload and the seq range it carries."""

    payload: bytes
    first_seq: int
    last_seq: int
    count: int
    full: bool
    """True when readings were left out because the next one would cross ``max_bytes``."""


def reading_fragment(reading: SpooledReading) -> bytes:
    """The JSON of one wire reading (``WireReading`` in readings/models.py)."""
    doc: dict[str, object] = {"seq": reading.seq, "ts": to_rfc3339(reading.ts_ms), "energy_wh": reading.energy_wh}
    for name in _OPTIONAL:
        value = getattr(reading, name)
        if value is not None:
            doc[name] = value
    return orjson.dumps(doc)


def _envelope(device_id: str) -> tuple[bytes, bytes]:
    head = b'{"v":%d,"device_id":' % SCHEMA_VERSION + orjson.dumps(device_id) + b',"readings":['
    return head, b"]}"


# A float's JSON is at most 24 characters (sign, 17 digits, point, "e-308"): this one is. Every
# value at that length, the largest seq and the last RFC 3339 instant make the largest reading.
_LONGEST_FLOAT = -2.2250738585072014e-308
LARGEST_READING = SpooledReading(
    seq=MAX_SEQ,
    ts_ms=MAX_TS_MS,
    energy_wh=_LONGEST_FLOAT,
    power_w=_LONGEST_FLOAT,
    voltage_v=_LONGEST_FLOAT,
    current_a=_LONGEST_FLOAT,
    pf=_LONGEST_FLOAT,
    energy_export_wh=_LONGEST_FLOAT,
)
MIN_MESSAGE_BYTES = sum(map(len, _envelope("x" * 128))) + len(reading_fragment(LARGEST_READING))
"""The smallest ``max_bytes`` that any one reading of any thing name fits in."""


def pack(device_id: str, readings: Sequence[SpooledReading], *, max_readings: int, max_bytes: int) -> Packed:
    """The longest prefix of ``readings`` (at most ``max_readings``) whose message fits ``max_bytes``.

    Raises ``DeviceError`` when not even one reading fits (a configuration error: the limit
    is far below any real reading's size).
    """
    if not readings:
        raise DeviceError("nothing to pack")
    head, tail = _envelope(device_id)
    size = len(head) + len(tail)
    fragments: list[bytes] = []
    full = False
    for reading in readings[:max_readings]:
        fragment = reading_fragment(reading)
        extra = len(fragment) + (1 if fragments else 0)
        if size + extra > max_bytes:
            full = True
            break
        fragments.append(fragment)
        size += extra
    if not fragments:
        raise DeviceError(f"one reading does not fit in {max_bytes} bytes")
    payload = head + b",".join(fragments) + tail
    return Packed(payload, readings[0].seq, readings[len(fragments) - 1].seq, len(fragments), full)
