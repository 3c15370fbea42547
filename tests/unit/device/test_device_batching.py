"""Edge batching: every message fits the 5 KB billing step and is valid wire v1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from device.batching import IOT_BILLING_STEP_BYTES, BatchPolicy, pack
from device.spool import SpooledReading
from readings.models import Message

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
        )
        for i in range(n)
    ]


@settings(max_examples=150, deadline=None)
@given(
    rs=readings(),
    device_id=st.from_regex(r"[A-Za-z0-9_:-]{1,128}", fullmatch=True),  # thing names
    max_readings=st.integers(min_value=1, max_value=500),
    max_bytes=st.integers(min_value=600, max_value=IOT_BILLING_STEP_BYTES),
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
