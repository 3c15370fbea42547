"""Decode one Kinesis record into valid readings and rejections.

Validation is per reading: one bad reading in a message is dead-lettered with its reason and
the valid readings beside it are kept. Only what makes the whole message untrustworthy (not
JSON, unknown version, a spoofed device id, a broken envelope) rejects the whole record.

Decoding is a pure function of the record: the "future" check compares against the time the
rule received the message (``received_ms``), not the consumer's clock, so a replayed record
is judged exactly as it was the first time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from readings.errors import Reason
from readings.models import SCHEMA_VERSION, Reading, WireReading, to_ts_ms

DEFAULT_FUTURE_TOLERANCE_MS = 5 * 60 * 1000
DEFAULT_MAX_AGE_MS = 35 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (``index`` None) or one reading of it (``index`` set) that was not stored."""

    reason: Reason
    detail: str
    index: int | None = None
    reading: dict[str, Any] | None = None


@dataclass(slots=True)
class Decoded:
    """What one record yields: the thing it came from, its valid readings, its rejections."""

    device_id: str | None
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson refuses NaN/Infinity literals; the stdlib accepts them, so such a payload is
        # reported as the non-finite value it carries rather than as broken JSON.
        return json.loads(data.decode("utf-8"))


def _reading_reason(exc: ValidationError) -> tuple[Reason, str]:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "reading"
    kind = first["type"]
    if kind == "finite_number":
        return Reason.NON_FINITE_VALUE, f"{where}: not a finite number"
    if kind == "greater_than_equal" and isinstance(first.get("input"), (int, float)):
        value = first["input"]
        if isinstance(value, float) and math.isnan(value):
            return Reason.NON_FINITE_VALUE, f"{where}: NaN"
        # Only a value that must not be negative is a negative_value: a pf below -1 is out of
        # range, and so is a negative seq (a counter, not a measurement).
        if value < 0 and first.get("ctx", {}).get("ge") == 0 and where != "seq":
            return Reason.NEGATIVE_VALUE, f"{where}: {value} < 0"
    if kind in ("less_than_equal", "greater_than_equal") and where != "seq":
        return Reason.OUT_OF_RANGE, f"{where}: {first.get('input')!r} outside {first.get('ctx', {})}"
    return Reason.SCHEMA_VIOLATION, f"{where}: {first['msg']}"


def decode_record(
    data: bytes,
    *,
    fallback_received_ms: int,
    future_tolerance_ms: int = DEFAULT_FUTURE_TOLERANCE_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
) -> Decoded:
    """Validate one record as the topic rule delivers it.

    ``fallback_received_ms`` (the record's Kinesis arrival time) stands in for ``received_ms``
    when the rule did not add one. Never raises: whatever the bytes, the answer is data.
    """
    try:
        doc = _loads(data)
    except Exception as exc:  # noqa: BLE001 - ValueError, UnicodeDecodeError, RecursionError, ...
        return Decoded(None, rejections=[Rejection(Reason.INVALID_JSON, f"{type(exc).__name__}: {exc}"[:200])])
    if not isinstance(doc, dict):
        return Decoded(None, rejections=[Rejection(Reason.INVALID_JSON, "not a JSON object")])
    # JSON true would compare equal to 1 in Python; it is not a version number.
    if isinstance(doc.get("v"), bool) or doc.get("v") != SCHEMA_VERSION:
        detail = f"v={doc.get('v')!r}, expected {SCHEMA_VERSION}"
        return Decoded(None, rejections=[Rejection(Reason.UNSUPPORTED_VERSION, detail)])

    device_id, thing = doc.get("device_id"), doc.get("thing")
    readings = doc.get("readings")
    if not isinstance(device_id, str) or not device_id or not isinstance(readings, list):
        return Decoded(None, rejections=[Rejection(Reason.SCHEMA_VIOLATION, "envelope: device_id or readings")])
    if not readings:
        return Decoded(device_id, rejections=[Rejection(Reason.SCHEMA_VIOLATION, "readings: empty")])
    if not isinstance(thing, str) or not thing:
        return Decoded(device_id, rejections=[Rejection(Reason.SCHEMA_VIOLATION, "envelope: thing missing")])
    if thing != device_id:
        detail = f"payload device_id {device_id!r} published as thing {thing!r}"
        return Decoded(thing, rejections=[Rejection(Reason.SPOOFED_DEVICE_ID, detail)])

    received_ms = doc.get("received_ms")
    if not isinstance(received_ms, int) or isinstance(received_ms, bool):
        received_ms = fallback_received_ms
    latest_ok_ms = received_ms + future_tolerance_ms
    earliest_ok_ms = received_ms - max_age_ms

    out = Decoded(device_id)
    for index, raw in enumerate(readings):
        if not isinstance(raw, dict):
            out.rejections.append(Rejection(Reason.SCHEMA_VIOLATION, "reading: not an object", index))
            continue
        try:
            wire = WireReading.model_validate(raw)
        except ValidationError as exc:
            reason, detail = _reading_reason(exc)
            out.rejections.append(Rejection(reason, detail, index, raw))
            continue
        ts_ms = to_ts_ms(wire.ts)
        if ts_ms > latest_ok_ms:
            detail = f"ts {ts_ms} is {(ts_ms - received_ms) / 1000:.0f} s after receipt"
            out.rejections.append(Rejection(Reason.FUTURE_TIMESTAMP, detail, index, raw))
            continue
        if ts_ms < earliest_ok_ms:
            # A box whose clock never synced (1970) would otherwise spread one register step
            # over decades of hourly buckets.
            detail = f"ts {ts_ms} is {(received_ms - ts_ms) / 86_400_000:.0f} days before receipt"
            out.rejections.append(Rejection(Reason.STALE_TIMESTAMP, detail, index, raw))
            continue
        out.readings.append(
            Reading(
                device_id=device_id,
                seq=wire.seq,
                ts_ms=ts_ms,
                energy_wh=wire.energy_wh,
                power_w=wire.power_w,
                voltage_v=wire.voltage_v,
                current_a=wire.current_a,
                pf=wire.pf,
            )
        )
    return out
