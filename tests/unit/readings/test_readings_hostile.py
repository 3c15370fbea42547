"""Records a broken or hostile producer can send: each is data (a reason code), never a crash,
and nothing that passes can later be refused by the store."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readings import Reason, decode_record
from readings.decode import MAX_READINGS, MAX_RECORD_BYTES
from tests.unit.readings.conftest import FALLBACK_MS, make_record, make_wire_reading


def decode(data: bytes, **kwargs) -> object:
    return decode_record(data, fallback_received_ms=FALLBACK_MS, **kwargs)


def reasons(decoded) -> list[Reason]:
    return [r.reason for r in decoded.rejections]


class TestNumbersTheStoreCannotHold:
    def test_a_huge_seq_beside_a_nan_is_refused_like_without_it(self) -> None:
        # orjson refuses the NaN, so the stdlib parses the record: it must read 10**38 as orjson would.
        data = make_record(make_wire_reading(seq=10**38), make_wire_reading(seq=2, power_w=float("nan")))
        decoded = decode(data)
        assert decoded.readings == []
        assert reasons(decoded) == [Reason.SCHEMA_VIOLATION, Reason.NON_FINITE_VALUE]

    @pytest.mark.parametrize("seq", [2**63, 2**64 - 1, 10**38])
    def test_a_seq_past_64_bits_is_refused(self, seq: int) -> None:
        assert reasons(decode(make_record(make_wire_reading(seq=seq)))) == [Reason.SCHEMA_VIOLATION]

    def test_the_largest_seq_is_taken(self) -> None:
        assert [r.seq for r in decode(make_record(make_wire_reading(seq=2**63 - 1))).readings] == [2**63 - 1]

    def test_received_ms_past_year_9999_falls_back_to_the_arrival_time(self) -> None:
        data = make_record(make_wire_reading(ts="2026-11-27T13:10:30Z"), received_ms=253_402_300_800_000 * 10)
        assert reasons(decode(data)) == []  # judged against the fallback, 13:06


class TestIdentity:
    @pytest.mark.parametrize(
        "device_id",
        ["box/1", "box#1", "b\x00x", "b\nx", "b\ud800", "\u0412ox-0001", "x" * 129, "x" * 3000, "box 1", "a.b"],
    )
    def test_a_device_id_that_is_no_thing_name_is_refused(self, device_id: str) -> None:
        data = json.dumps(json.loads(make_record())).replace('"box-0001"', json.dumps(device_id)).encode()
        decoded = decode(data)
        assert reasons(decoded) == [Reason.INVALID_DEVICE_ID]
        assert decoded.rejections[0].detail.isascii() and len(decoded.rejections[0].detail) <= 200

    def test_the_partition_key_must_be_the_thing(self) -> None:
        data = make_record()
        assert reasons(decode(data, partition_key="box-0001")) == []
        assert reasons(decode(data, partition_key="box-0002")) == [Reason.PARTITION_KEY_MISMATCH]


def bare(seq: int) -> dict:
    return {"seq": seq, "ts": "2026-11-27T13:00:00Z", "energy_wh": 1.5}


class TestSize:
    def test_a_record_over_the_limit_is_refused_unparsed(self) -> None:
        data = make_record(make_wire_reading(pad="x" * MAX_RECORD_BYTES))
        assert reasons(decode(data)) == [Reason.TOO_LARGE]

    def test_more_readings_than_any_box_sends_are_refused_as_one(self) -> None:
        data = make_record(*[bare(n) for n in range(MAX_READINGS + 1)])
        assert len(data) <= MAX_RECORD_BYTES
        assert reasons(decode(data)) == [Reason.TOO_MANY_READINGS]

    def test_the_most_readings_are_taken(self) -> None:
        data = make_record(*[bare(n) for n in range(MAX_READINGS)])
        assert len(decode(data).readings) == MAX_READINGS


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_decoding_any_bytes_never_raises(data: bytes) -> None:
    decoded = decode(data)
    assert decoded.readings or decoded.rejections
