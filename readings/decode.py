"""Decode one Kinesis record into valid readings and rejections.

Validation is per reading: one bad reading in a message is dead-lettered with its reason and
the valid readings beside it are kept. Only what makes the whole message untrustworthy (not
JSON, unknown version, a spoofed or malformed device id, a broken envelope, a record larger
than any message IoT Core accepts) rejects the whole record.

Decoding is a pure function of the record: the "future" check compares against the time the
rule received the message (``received_ms``), not the consumer's clock, so a replayed record
is judged exactly as it was the first time.

Hostile input is bounded here, before anything else sees it: a record over ``MAX_RECORD_BYTES``
is not parsed, one with more than ``MAX_READINGS`` readings is not validated, so the work and
the memory spent on one record are at most a constant times its size. A rejection holds its
reason, a short detail and the reading's index, never a copy of the reading: the dead letter
stores the record's bytes once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from readings.errors import Reason
from readings.models import (
    MAX_READINGS,
    MAX_TS_MS,
    SCHEMA_VERSION,
    Reading,
    WireReading,
    is_thing_name,
    to_ts_ms,
)

DEFAULT_FUTURE_TOLERANCE_MS = 5 * 60 * 1000
DEFAULT_MAX_AGE_MS = 35 * 24 * 3600 * 1000

MAX_RECORD_BYTES = 128 * 1024 + 512
"""IoT Core's largest message (128 KB) plus what the rule adds (``thing``, ``received_ms``)."""
MAX_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (``index`` None) or one reading of it (``index`` set) that was not stored."""

    reason: Reason
    detail: str
    index: int | None = None


@dataclass(slots=True)
class Decoded:
    """What one record yields: the thing it came from, its valid readings, its rejections."""

    device_id: str | None
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _int_like_orjson(text: str) -> int | float:
    # orjson reads an integer beyond 64 bits as a float; the fallback must read the same
    # number the same way, or a seq of 10**38 would pass here and fail in the store.
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson refuses NaN/Infinity literals; the stdlib accepts them, so such a payload is
        # reported as the non-finite value it carries rather than as broken JSON.
        return json.loads(data.decode("utf-8"), parse_int=_int_like_orjson)


def _clip(text: str) -> str:
    """A detail safe to log and store: ASCII (no lone surrogate survives), bounded length."""
    return text.encode("ascii", "backslashreplace").decode("ascii")[:MAX_DETAIL_CHARS]


def _reading_reason(exc: ValidationError) -> tuple[Reason, str]:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "reading"
    kind = first["type"]
    if kind == "finite_number":
        return Reason.NON_FINITE_VALUE, f"{where}: not a finite number"
    if kind == "greater_than_equal" and isinstance(first.get("input"), int | float):
        value = first["input"]
        if isinstance(value, float) and math.isnan(value):
            return Reason.NON_FINITE_VALUE, f"{where}: NaN"
        # Only a value that must not be negative is a negative_value: a pf below -1 is out of
        # range, and so is a negative seq (a counter, not a measurement).
        if value < 0 and first.get("ctx", {}).get("ge") == 0 and where != "seq":
            return Reason.NEGATIVE_VALUE, f"{where}: {value} < 0"
    if kind in ("less_than_equal", "greater_than_equal") and where != "seq":
        return Reason.OUT_OF_RANGE, _clip(f"{where}: {first.get('input')!r} outside {first.get('ctx', {})}")
    return Reason.SCHEMA_VIOLATION, _clip(f"{where}: {first['msg']}")


def _record_rejection(device_id: str | None, reason: Reason, detail: str) -> Decoded:
    return Decoded(device_id, rejections=[Rejection(reason, _clip(detail))])


def decode_record(
    data: bytes,
    *,
    fallback_received_ms: int,
    future_tolerance_ms: int = DEFAULT_FUTURE_TOLERANCE_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
    partition_key: str | None = None,
) -> Decoded:
    """Validate one record as the topic rule delivers it.

    ``fallback_received_ms`` (the record's Kinesis arrival time) stands in for ``received_ms``
    when the rule did not add one. ``partition_key``, when given, must be the record's
    ``thing``, as the rule puts it. Never raises: whatever the bytes, the answer is data.
    """
    if len(data) > MAX_RECORD_BYTES:
        return _record_rejection(None, Reason.TOO_LARGE, f"{len(data)} bytes, at most {MAX_RECORD_BYTES}")
    try:
        doc = _loads(data)
    except Exception as exc:  # noqa: BLE001 - ValueError, UnicodeDecodeError, RecursionError, ...
        return _record_rejection(None, Reason.INVALID_JSON, f"{type(exc).__name__}: {exc}")
    plain = _plain_record(doc, partition_key, fallback_received_ms, future_tolerance_ms, max_age_ms)
    if plain is not None:
        return plain
    if not isinstance(doc, dict):
        return _record_rejection(None, Reason.INVALID_JSON, "not a JSON object")
    # JSON true would compare equal to 1 in Python; it is not a version number.
    if isinstance(doc.get("v"), bool) or doc.get("v") != SCHEMA_VERSION:
        return _record_rejection(None, Reason.UNSUPPORTED_VERSION, f"v={doc.get('v')!r}, expected {SCHEMA_VERSION}")

    device_id, thing = doc.get("device_id"), doc.get("thing")
    readings = doc.get("readings")
    if not isinstance(device_id, str) or not device_id or not isinstance(readings, list):
        return _record_rejection(None, Reason.SCHEMA_VIOLATION, "envelope: device_id or readings")
    if not isinstance(thing, str) or not thing:
        return _record_rejection(None, Reason.SCHEMA_VIOLATION, "envelope: thing missing")
    if not is_thing_name(thing):
        return _record_rejection(None, Reason.INVALID_DEVICE_ID, f"thing {thing!r}")
    if partition_key is not None and partition_key != thing:
        return _record_rejection(thing, Reason.PARTITION_KEY_MISMATCH, f"thing {thing!r} under key {partition_key!r}")
    if thing != device_id:
        return _record_rejection(
            thing, Reason.SPOOFED_DEVICE_ID, f"payload device_id {device_id!r} published as thing {thing!r}"
        )
    if not readings:
        return _record_rejection(device_id, Reason.SCHEMA_VIOLATION, "readings: empty")
    if len(readings) > MAX_READINGS:
        return _record_rejection(
            device_id, Reason.TOO_MANY_READINGS, f"{len(readings)} readings, at most {MAX_READINGS}"
        )

    received_ms = doc.get("received_ms")
    if not isinstance(received_ms, int) or isinstance(received_ms, bool) or not 0 <= received_ms <= MAX_TS_MS:
        received_ms = fallback_received_ms
    latest_ok_ms = received_ms + future_tolerance_ms
    earliest_ok_ms = received_ms - max_age_ms

    out = Decoded(device_id)
    window = (received_ms, earliest_ok_ms, latest_ok_ms)
    plain_readings = _plain_readings(device_id, readings, window)
    if plain_readings is not None:
        out.readings, out.rejections = plain_readings
        return out
    # Some reading is not plainly valid: the wire model, reading by reading, finds which and why.
    out.readings, out.rejections = _model_readings(device_id, readings, window)
    return out


def _model_readings(
    device_id: str, readings: list[Any], window: tuple[int, int, int]
) -> tuple[list[Reading], list[Rejection]]:
    """Each reading through the wire model: what it is, or why it is rejected."""
    out: list[Reading] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(readings):
        if not isinstance(raw, dict):
            rejections.append(Rejection(Reason.SCHEMA_VIOLATION, "reading: not an object", index))
            continue
        try:
            wire = WireReading.model_validate(raw)
        except ValidationError as exc:
            reason, detail = _reading_reason(exc)
            rejections.append(Rejection(reason, detail, index))
            continue
        ts_ms = to_ts_ms(wire.ts)
        rejection = _time_rejection(ts_ms, index, window)
        if rejection is not None:
            rejections.append(rejection)
            continue
        out.append(
            Reading(
                device_id,
                wire.seq,
                ts_ms,
                wire.energy_wh,
                wire.power_w,
                wire.voltage_v,
                wire.current_a,
                wire.pf,
                wire.energy_export_wh,
            )
        )
    return out, rejections


def _time_rejection(ts_ms: int, index: int, window: tuple[int, int, int]) -> Rejection | None:
    """The rejection of a reading whose ``ts`` lies outside ``(received, earliest, latest)``."""
    received_ms, earliest_ok_ms, latest_ok_ms = window
    if ts_ms > latest_ok_ms:
        detail = f"ts {ts_ms} is {(ts_ms - received_ms) / 1000:.0f} s after receipt"
        return Rejection(Reason.FUTURE_TIMESTAMP, detail, index)
    if ts_ms < earliest_ok_ms:
        # A box whose clock never synced (1970) would otherwise spread one register step
        # over decades of hourly buckets.
        detail = f"ts {ts_ms} is {(received_ms - ts_ms) / 86_400_000:.0f} days before receipt"
        return Rejection(Reason.STALE_TIMESTAMP, detail, index)
    if not 0 <= ts_ms <= MAX_TS_MS:
        # Only a record with an odd received_ms gets here: no bucket key exists past 9999.
        return Rejection(Reason.OUT_OF_RANGE, f"ts {ts_ms} outside 1970..9999", index)
    return None


# ---- the plain path ---------------------------------------------------------------------------
#
# Nearly every record a box sends holds readings that are plainly valid. The compiled plain path
# (``readings/_plain.pyx``) takes those in one pass and gives exactly what the wire model gives;
# anything else makes the whole record take the model's path, which alone decides what is wrong.
# Without the compiled module (a build without a C compiler) every record takes the model's path:
# slower, the same readings and rejections.

try:
    from readings._plain import plain_readings as _compiled_plain_readings
    from readings._plain import plain_record as _compiled_plain_record
except ImportError:  # pragma: no cover - a build without a C compiler
    _compiled_plain_readings = _compiled_plain_record = None  # type: ignore[assignment]

COMPILED = _compiled_plain_readings is not None
"""Whether the plain path is there (it is in every image and wheel built with a C compiler)."""
_WINDOW_LIMIT_MS = 2**62


def _plain_record(
    doc: Any, partition_key: str | None, fallback_received_ms: int, future_tolerance_ms: int, max_age_ms: int
) -> Decoded | None:
    """What ``decode_record`` gives for a parsed record that is plainly valid whole, else None."""
    if _compiled_plain_record is None:
        return None
    plain = _compiled_plain_record(doc, partition_key, fallback_received_ms, future_tolerance_ms, max_age_ms)
    if plain is None:
        return None
    device_id, readings, outside, received_ms = plain
    out = Decoded(device_id, readings)
    if outside:
        window = (received_ms, received_ms - max_age_ms, received_ms + future_tolerance_ms)
        out.rejections = _window_rejections(outside, window)
    return out


def _window_rejections(outside: list[tuple[int, int]], window: tuple[int, int, int]) -> list[Rejection]:
    """The time rejections of the plain path's ``(index, ts_ms)`` outside the window."""
    rejections = [_time_rejection(ts_ms, index, window) for index, ts_ms in outside]
    assert all(rejections), "a reading outside the window has a time rejection"
    return rejections  # type: ignore[return-value]


def _plain_readings(
    device_id: str, readings: list[Any], window: tuple[int, int, int]
) -> tuple[list[Reading], list[Rejection]] | None:
    """The readings and time rejections of a record whose readings are all plainly valid, else None."""
    _, earliest_ok_ms, latest_ok_ms = window
    if _compiled_plain_readings is None or not -_WINDOW_LIMIT_MS < earliest_ok_ms <= latest_ok_ms < _WINDOW_LIMIT_MS:
        return None
    plain = _compiled_plain_readings(device_id, readings, earliest_ok_ms, latest_ok_ms)
    if plain is None:
        return None
    out, outside = plain
    return out, _window_rejections(outside, window)
