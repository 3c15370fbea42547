"""What every meter source does with what a device sends: bounded decoding and checked values.

A device on the LAN is not trusted more than a box is by the consumer: a document may be huge,
deeply nested, not JSON, or carry strings where numbers belong. Here that becomes a
``MeterError`` with a reason, never an exception that stops the box:

- ``decode_json`` refuses more than ``max_bytes`` before parsing (memory stays bounded by the
  limit, not by what the device sends), and turns every parser failure (bad UTF-8, bad JSON,
  nesting deeper than the interpreter's recursion limit, integers longer than Python converts)
  into ``garbage``;
- ``number`` takes a JSON number only (not a bool, not a string) and refuses NaN and infinities;
- ``checked_sample`` applies the wire contract's bounds (``readings.models``) so a source never
  spools a reading the consumer would reject, and rounds to 1 mWh like the Modbus source.
"""

from __future__ import annotations

import json
import math
from typing import Any

import structlog

from device.meters import MeterError
from device.spool import Sample
from readings.models import MAX_ELECTRICAL, MAX_POWER_W, MAX_REGISTER_WH

log = structlog.get_logger("device.sources")

MAX_DOCUMENT_BYTES = 64 * 1024
"""The largest document a source parses. A Pro 3EM's full GetStatus is about 3 KB."""


def decode_json(payload: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES, what: str = "document") -> dict[str, Any]:
    """The JSON object in ``payload``; ``MeterError("garbage")`` for anything else."""
    if len(payload) > max_bytes:
        raise MeterError("garbage", f"{what} of {len(payload)} bytes, more than {max_bytes}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MeterError("garbage", f"{what} is not JSON: {str(exc)[:120]}") from exc
    if not isinstance(doc, dict):
        raise MeterError("garbage", f"{what} is a JSON {type(doc).__name__}, not an object")
    return doc


def number(value: object, what: str) -> float:
    """``value`` as a finite float; ``MeterError("garbage")`` if it is not a JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MeterError("garbage", f"{what} is {type(value).__name__}, not a number")
    result = float(value)
    if not math.isfinite(result):
        raise MeterError("garbage", f"{what} is {result}")
    return result


def optional_number(value: object, what: str) -> float | None:
    """Like ``number``, but a missing value (None) stays None."""
    return None if value is None else number(value, what)


def member(doc: object, *path: str) -> object:
    """``doc[path[0]][path[1]]…`` or None where a level is missing or not an object."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def checked_sample(
    *,
    ts_ms: int,
    energy_wh: float,
    energy_export_wh: float | None = None,
    power_w: float | None = None,
    voltage_v: float | None = None,
    current_a: float | None = None,
    pf: float | None = None,
    source: str,
) -> Sample:
    """A ``Sample`` within the wire contract's bounds, or ``MeterError("garbage")``.

    Registers must be 0..1e13 Wh; ``power_w`` is import power (a negative value, an exporting
    meter, becomes 0: what it exports shows in the export register); V and A 0..1e6; a power
    factor outside -1..1 is dropped (some plugs report 0..100 or garbage while idle), not fatal.
    """
    for name, register in (("energy_wh", energy_wh), ("energy_export_wh", energy_export_wh)):
        if register is not None and not 0 <= register <= MAX_REGISTER_WH:
            raise MeterError("garbage", f"{source}: {name} {register} outside 0..{MAX_REGISTER_WH:g}")
    if power_w is not None and abs(power_w) > MAX_POWER_W:
        raise MeterError("garbage", f"{source}: power {power_w} W")
    for name, value in (("voltage_v", voltage_v), ("current_a", current_a)):
        if value is not None and not 0 <= value <= MAX_ELECTRICAL:
            raise MeterError("garbage", f"{source}: {name} {value}")
    return Sample(
        ts_ms=ts_ms,
        energy_wh=round(energy_wh, 3),
        power_w=None if power_w is None else round(max(0.0, power_w), 3),
        voltage_v=None if voltage_v is None else round(voltage_v, 3),
        current_a=None if current_a is None else round(current_a, 4),
        pf=None if pf is None or not -1.0 <= pf <= 1.0 else round(pf, 4),
        energy_export_wh=None if energy_export_wh is None else round(energy_export_wh, 3),
    )


class RegisterWatch:
    """Logs a device's reboot (its uptime went back) and a register that went down; changes nothing.

    A source never hides a reset: the register goes to the wire as the device reports it and the
    consumer's register rules decide (reset or glitch). This only makes it visible on the box.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.uptime_s: float | None = None
        self.energy_wh: float | None = None
        self.reboots = 0
        self.decreases = 0

    def see(self, sample: Sample, *, uptime: object = None) -> None:
        up = float(uptime) if isinstance(uptime, int | float) and not isinstance(uptime, bool) else None
        rebooted = up is not None and self.uptime_s is not None and up < self.uptime_s
        if rebooted:
            self.reboots += 1
            log.warning("meter_rebooted", meter=self.name, uptime_s=up, before_s=self.uptime_s)
        if self.energy_wh is not None and sample.energy_wh < self.energy_wh:
            self.decreases += 1
            log.warning(
                "meter_register_decreased",
                meter=self.name,
                energy_wh=sample.energy_wh,
                before_wh=self.energy_wh,
                rebooted=rebooted,
            )
        self.uptime_s = up if up is not None else self.uptime_s
        self.energy_wh = sample.energy_wh
