"""The wire format is strict: numbers are JSON numbers and times carry their offset."""

from __future__ import annotations

import orjson
import pytest

from readings import Reason, decode_record


def _record(**reading: object) -> bytes:
    base = {"seq": 1, "ts": "2026-11-27T13:00:00Z", "energy_wh": 10.0}
    return orjson.dumps(
        {
            "v": 1,
            "device_id": "box-1",
            "thing": "box-1",
            "received_ms": 1_795_800_000_000,
            "readings": [{**base, **reading}],
        }
    )


@pytest.mark.parametrize(
    "field, value",
    [("energy_wh", "123"), ("energy_wh", True), ("power_w", "5"), ("power_w", False), ("ts", "2026-11-27T13:00:00")],
)
def test_non_numbers_and_naive_times_are_schema_violations(field: str, value: object) -> None:
    decoded = decode_record(_record(**{field: value}), fallback_received_ms=0)
    assert decoded.readings == []
    assert [r.reason for r in decoded.rejections] == [Reason.SCHEMA_VIOLATION]


def test_integers_are_numbers() -> None:
    decoded = decode_record(_record(energy_wh=12, power_w=0), fallback_received_ms=0)
    assert [(r.energy_wh, r.power_w) for r in decoded.readings] == [(12.0, 0.0)]


def test_a_clock_that_never_synced_is_stale_and_tiny_values_round_to_micro_units() -> None:
    decoded = decode_record(_record(ts="1970-01-01T00:00:10Z"), fallback_received_ms=0)
    assert [r.reason for r in decoded.rejections] == [Reason.STALE_TIMESTAMP]
    [reading] = decode_record(_record(energy_wh=1e-200, power_w=0.1234567), fallback_received_ms=0).readings
    assert (reading.energy_wh, reading.power_w) == (0.0, 0.123457)


def test_nothing_a_record_holds_makes_decoding_raise() -> None:
    deep = b'{"x": NaN, "readings": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for data in (deep, b"\xff\xfe", b'"\\ud800"', b"[]", b"null"):
        decoded = decode_record(data, fallback_received_ms=0)
        assert decoded.readings == [] and decoded.rejections[0].reason == Reason.INVALID_JSON
