"""Factories for records as the topic rule puts them on the stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

DEVICE = "box-0001"
RECEIVED_MS = 1_795_784_700_000
"""2026-11-27T13:05:00Z, when the rule received the message."""
FALLBACK_MS = 1_795_784_760_000
"""2026-11-27T13:06:00Z, the Kinesis arrival time used when ``received_ms`` is missing."""

_OMIT = object()


def make_wire_reading(seq: int = 1021, **fields: Any) -> dict[str, Any]:
    """One reading as published; pass ``field=None`` to leave an optional field out."""
    out: dict[str, Any] = {
        "seq": seq,
        "ts": "2026-11-27T13:00:00Z",
        "energy_wh": 123456.7,
        "power_w": 532.1,
        "voltage_v": 230.1,
        "current_a": 2.31,
        "pf": 0.98,
    }
    out.update(fields)
    return out


def make_record(*readings: dict[str, Any], **envelope: Any) -> bytes:
    """A rule record (JSON bytes) holding ``readings`` (one default reading if none given).

    ``envelope`` overrides ``v``, ``device_id``, ``thing``, ``received_ms`` or ``readings``; the
    ``omit`` fixture as a value removes the key. NaN and Infinity are written as the
    non-standard literals a sloppy publisher would send.
    """
    doc: dict[str, Any] = {
        "v": 1,
        "device_id": DEVICE,
        "thing": DEVICE,
        "received_ms": RECEIVED_MS,
        "readings": list(readings) or [make_wire_reading()],
    }
    doc.update(envelope)
    doc = {k: v for k, v in doc.items() if v is not _OMIT}
    return json.dumps(doc).encode()


@pytest.fixture
def wire_reading() -> Callable[..., dict[str, Any]]:
    return make_wire_reading


@pytest.fixture
def record() -> Callable[..., bytes]:
    return make_record


@pytest.fixture
def omit() -> object:
    return _OMIT
