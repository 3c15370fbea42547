"""Edge batching: every message fits the 5 KB billing step and is valid wire v1; a reading
without an export register is the same bytes as before the field existed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.batching import IOT_BILLING_STEP_BYTES, LARGEST_READING, MIN_MESSAGE_BYTES, BatchPolicy, pack
from device.spool import SpooledReading
from readings.decode import MAX_READINGS
from readings.errors import DeviceError
from readings.models import MAX_SEQ, MAX_TS_MS, Message

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

finite = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
optional = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def readings(draw: st.DrawFn) -> list[SpooledReading]:
    n = draw(st.integers(min_value=1, max_value=300))
    first = draw(st.integers(min_value=0, max_value=2**53))
    ts0 = draw(st.integers(min_value=0, max_value=4_000_000_000_000))
    return [
        SpooledReading(
            seq=first + i,
            ts_ms=ts0 + i * 1000,
            energy_wh=draw(finite),
            power_w=draw(optional),
            voltage_v=draw(optional),
            current_a=draw(optional),
            pf=draw(st.none() | st.floats(min_value=-1, max_value=1)),
            energy_export_wh=draw(st.none() | finite),
        )
        for i in range(n)
    ]


thing_names = st.from_regex(r"[A-Za-z0-9_:-]{1,128}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(
    rs=readings(),
    device_id=thing_names,
    max_readings=st.integers(min_value=1, max_value=500),
    max_bytes=st.integers(min_value=MIN_MESSAGE_BYTES, max_value=IOT_BILLING_STEP_BYTES),
)
def test_message_never_exceeds_limit_and_carries_a_prefix(
    rs: list[SpooledReading], device_id: str, max_readings: int, max_bytes: int
) -> None:
    packed = pack(device_id, rs, max_readings=max_readings, max_bytes=max_bytes)
    assert len(packed.payload) <= max_bytes

    message = Message.model_validate_json(packed.payload)
    assert message.device_id == device_id
    carried = rs[: packed.count]
    assert [r.seq for r in message.readings] == [r.seq for r in carried]
    assert [r.ts for r in message.readings] == [EPOCH + timedelta(milliseconds=r.ts_ms) for r in carried]
    # the wire contract keeps values to micro-units
    assert [r.energy_wh for r in message.readings] == [round(r.energy_wh, 6) for r in carried]
    assert [r.energy_export_wh for r in message.readings] == [
        None if r.energy_export_wh is None else round(r.energy_export_wh, 6) for r in carried
    ]
    assert (packed.first_seq, packed.last_seq) == (carried[0].seq, carried[-1].seq)

    # maximal: either the count limit or the next reading would cross the byte limit
    if packed.count < min(len(rs), max_readings):
        assert packed.full
        bigger = pack(device_id, rs, max_readings=packed.count + 1, max_bytes=10**9)
        assert len(bigger.payload) > max_bytes


def test_typical_readings_fill_most_of_the_step() -> None:
    rs = [
        SpooledReading(
            seq=100_000 + i,
            ts_ms=1_795_000_000_000 + i * 10_000,
            energy_wh=1_234_567.891,
            power_w=532.1,
            voltage_v=230.1,
            current_a=2.313,
            pf=0.982,
        )
        for i in range(200)
    ]
    packed = pack("box-0001", rs, max_readings=200, max_bytes=IOT_BILLING_STEP_BYTES)
    assert packed.full
    assert len(packed.payload) > 0.95 * IOT_BILLING_STEP_BYTES
    assert orjson.loads(packed.payload)["readings"][0]["ts"].endswith("Z")


def test_rule_waits_for_count_age_or_full() -> None:
    rule = BatchPolicy(max_readings=3, max_wait_s=10.0)
    two = [SpooledReading(seq=i, ts_ms=1_000 * i, energy_wh=1.0) for i in (1, 2)]
    assert not rule.ready([], 0, full=False)
    assert not rule.ready(two, 1_000 + 9_999, full=False)
    assert rule.ready(two, 1_000 + 10_000, full=False)
    assert rule.ready(two, 1_000, full=True)
    assert rule.ready(two + [SpooledReading(seq=3, ts_ms=3_000, energy_wh=1.0)], 3_000, full=False)


T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z
# The message of one reading exactly as the box published it before the export register existed.
OLD_LAYOUT = (
    b'{"v":1,"device_id":"box-0001","readings":[{"seq":7,"ts":"2026-11-27T00:00:00.000Z",'
    b'"energy_wh":1234.5,"power_w":532.1,"voltage_v":230.1,"current_a":2.313,"pf":0.982}]}'
)


def test_a_reading_without_export_is_the_bytes_of_the_old_layout() -> None:
    reading = SpooledReading(
        seq=7, ts_ms=T0, energy_wh=1234.5, power_w=532.1, voltage_v=230.1, current_a=2.313, pf=0.982
    )
    assert pack("box-0001", [reading], max_readings=5, max_bytes=IOT_BILLING_STEP_BYTES).payload == OLD_LAYOUT


def test_the_export_register_goes_last_and_only_when_set() -> None:
    reading = SpooledReading(seq=7, ts_ms=T0, energy_wh=1234.5, power_w=0.0, energy_export_wh=98.25)
    payload = pack("box-0001", [reading], max_readings=5, max_bytes=IOT_BILLING_STEP_BYTES).payload
    assert payload == (
        b'{"v":1,"device_id":"box-0001","readings":[{"seq":7,"ts":"2026-11-27T00:00:00.000Z",'
        b'"energy_wh":1234.5,"power_w":0.0,"energy_export_wh":98.25}]}'
    )
    assert Message.model_validate_json(payload).readings[0].energy_export_wh == 98.25
    zero = dataclasses.replace(reading, energy_export_wh=0.0)  # a register at 0 is a value, not an absence
    assert b'"energy_export_wh":0.0' in pack("b", [zero], max_readings=1, max_bytes=IOT_BILLING_STEP_BYTES).payload


@settings(max_examples=300)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_no_float_is_longer_in_json_than_the_one_the_largest_reading_uses(value: float) -> None:
    assert len(orjson.dumps(value)) <= len(orjson.dumps(LARGEST_READING.energy_wh))


def test_the_largest_reading_sets_every_field() -> None:
    assert all(getattr(LARGEST_READING, f.name) is not None for f in dataclasses.fields(SpooledReading))


any_float = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    device_id=thing_names,
    seq=st.integers(min_value=0, max_value=MAX_SEQ),
    ts_ms=st.integers(min_value=0, max_value=MAX_TS_MS),
    values=st.lists(st.none() | any_float, min_size=5, max_size=5),
    energy_wh=any_float,
)
def test_one_reading_of_any_box_fits_the_smallest_message_allowed(
    device_id: str, seq: int, ts_ms: int, values: list[float | None], energy_wh: float
) -> None:
    reading = SpooledReading(seq, ts_ms, energy_wh, *values)
    packed = pack(device_id, [reading], max_readings=1, max_bytes=MIN_MESSAGE_BYTES)
    assert packed.count == 1 and len(packed.payload) <= MIN_MESSAGE_BYTES


def test_the_largest_reading_of_the_longest_thing_name_fills_the_smallest_message_exactly() -> None:
    packed = pack("x" * 128, [LARGEST_READING], max_readings=1, max_bytes=MIN_MESSAGE_BYTES)
    assert len(packed.payload) == MIN_MESSAGE_BYTES
    with pytest.raises(DeviceError):
        pack("x" * 128, [LARGEST_READING], max_readings=1, max_bytes=MIN_MESSAGE_BYTES - 1)


@pytest.mark.parametrize(
    "limits",
    [{"max_bytes": MIN_MESSAGE_BYTES - 1}, {"max_readings": 0}, {"max_readings": MAX_READINGS + 1}, {"max_wait_s": -1}],
)
def test_a_policy_the_box_or_the_consumer_could_not_honour_is_refused(limits: dict[str, float]) -> None:
    with pytest.raises(DeviceError):
        BatchPolicy(**limits)  # type: ignore[arg-type]
    BatchPolicy(max_bytes=MIN_MESSAGE_BYTES, max_readings=MAX_READINGS)


def test_typical_readings_with_export_still_fill_most_of_the_step() -> None:
    rs = [
        SpooledReading(
            seq=100_000 + i,
            ts_ms=1_795_000_000_000 + i * 10_000,
            energy_wh=1_234_567.891,
            power_w=532.1,
            voltage_v=230.1,
            current_a=2.313,
            pf=0.982,
            energy_export_wh=765_432.109,
        )
        for i in range(200)
    ]
    packed = pack("box-0001", rs, max_readings=200, max_bytes=IOT_BILLING_STEP_BYTES)
    assert packed.full and 0.95 * IOT_BILLING_STEP_BYTES < len(packed.payload) <= IOT_BILLING_STEP_BYTES
    assert packed.count == 30  # 163 bytes a reading; 37 of 133 bytes without the export register
