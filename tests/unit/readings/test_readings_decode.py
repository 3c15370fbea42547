"""decode_record: one Kinesis record -> valid readings and rejections with reason codes."""

from __future__ import annotations

import json

import pytest

from readings import Reading, Reason, decode_record

DEVICE = "box-0001"
# The factory's records were received at 13:05:00Z (received_ms 1_795_784_700_000).
FALLBACK_MS = 1_795_784_760_000  # 2026-11-27T13:06:00Z
T13_MS = 1_795_784_400_000  # 2026-11-27T13:00:00Z (date -u -d 2026-11-27T13:00:00Z +%s)


def decode(data: bytes):
    return decode_record(data, fallback_received_ms=FALLBACK_MS)


def reasons(decoded) -> list[tuple[Reason, int | None]]:
    return [(r.reason, r.index) for r in decoded.rejections]


class TestValid:
    def test_full_reading(self, record) -> None:
        decoded = decode(record())
        assert decoded.device_id == DEVICE
        assert decoded.rejections == []
        assert decoded.readings == [
            Reading(
                device_id=DEVICE,
                seq=1021,
                ts_ms=T13_MS,
                energy_wh=123456.7,
                power_w=532.1,
                voltage_v=230.1,
                current_a=2.31,
                pf=0.98,
            )
        ]

    def test_optional_values_may_be_missing(self, record) -> None:
        decoded = decode(record({"seq": 1, "ts": "2026-11-27T13:00:00Z", "energy_wh": 0}))
        assert decoded.readings == [Reading(DEVICE, 1, T13_MS, 0.0)]

    @pytest.mark.parametrize(
        ("ts", "expected_ms"),
        [
            ("2026-11-27T14:00:00+01:00", T13_MS),
            ("2026-11-27T08:00:00-05:00", T13_MS),
            ("2026-11-27T13:00:00.123Z", T13_MS + 123),
            ("2026-11-27T12:59:59.999Z", T13_MS - 1),
        ],
    )
    def test_timestamps_become_utc_epoch_ms(self, record, wire_reading, ts: str, expected_ms: int) -> None:
        [reading] = decode(record(wire_reading(ts=ts))).readings
        assert reading.ts_ms == expected_ms

    def test_several_readings_keep_their_order(self, record, wire_reading) -> None:
        decoded = decode(record(wire_reading(seq=7), wire_reading(seq=5), wire_reading(seq=6)))
        assert [r.seq for r in decoded.readings] == [7, 5, 6]

    def test_unknown_fields_are_ignored(self, record, wire_reading) -> None:
        decoded = decode(record(wire_reading(firmware="1.2.3"), extra="x"))
        assert len(decoded.readings) == 1 and decoded.rejections == []


class TestWholeRecordRejected:
    @pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe\x00", b'{"v": 1,'])
    def test_invalid_json(self, data: bytes) -> None:
        decoded = decode(data)
        assert (decoded.device_id, decoded.readings) == (None, [])
        assert reasons(decoded) == [(Reason.INVALID_JSON, None)]

    @pytest.mark.parametrize("data", [b"[]", b"[{}]", b"42", b'"text"', b"null"])
    def test_non_object(self, data: bytes) -> None:
        assert reasons(decode(data)) == [(Reason.INVALID_JSON, None)]

    @pytest.mark.parametrize("version", [2, 0, "1", None, True])
    def test_unsupported_version(self, record, version) -> None:
        decoded = decode(record(v=version))
        assert decoded.readings == []
        assert reasons(decoded) == [(Reason.UNSUPPORTED_VERSION, None)]

    def test_missing_version(self, record, omit) -> None:
        assert reasons(decode(record(v=omit))) == [(Reason.UNSUPPORTED_VERSION, None)]

    @pytest.mark.parametrize("thing", ["__omit__", "", None, 42])
    def test_missing_thing(self, record, omit, thing) -> None:
        decoded = decode(record(thing=omit if thing == "__omit__" else thing))
        assert decoded.readings == []
        assert reasons(decoded) == [(Reason.SCHEMA_VIOLATION, None)]

    def test_spoofed_device_id(self, record) -> None:
        decoded = decode(record(device_id="box-0002", thing=DEVICE))
        assert decoded.readings == []
        assert reasons(decoded) == [(Reason.SPOOFED_DEVICE_ID, None)]
        # Attributed to the thing the broker authenticated, not to the claimed id.
        assert decoded.device_id == DEVICE

    @pytest.mark.parametrize(
        "envelope",
        [{"device_id": "__omit__"}, {"device_id": ""}, {"readings": "__omit__"}, {"readings": {"seq": 1}}],
    )
    def test_broken_envelope(self, record, omit, envelope) -> None:
        envelope = {k: omit if v == "__omit__" else v for k, v in envelope.items()}
        decoded = decode(record(**envelope))
        assert decoded.readings == []
        assert reasons(decoded) == [(Reason.SCHEMA_VIOLATION, None)]

    def test_empty_readings(self, record) -> None:
        assert reasons(decode(record(readings=[]))) == [(Reason.SCHEMA_VIOLATION, None)]


class TestReadingRejected:
    @pytest.mark.parametrize("field", ["power_w", "energy_wh", "voltage_v", "current_a", "pf"])
    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_value(self, record, wire_reading, field: str, value: float) -> None:
        decoded = decode(record(wire_reading(**{field: value})))
        assert decoded.readings == []
        assert reasons(decoded) == [(Reason.NON_FINITE_VALUE, 0)]

    @pytest.mark.parametrize("field", ["power_w", "energy_wh", "voltage_v", "current_a"])
    def test_negative_value(self, record, wire_reading, field: str) -> None:
        decoded = decode(record(wire_reading(**{field: -0.5})))
        assert reasons(decoded) == [(Reason.NEGATIVE_VALUE, 0)]

    def test_negative_power_factor_is_valid(self, record, wire_reading) -> None:
        [reading] = decode(record(wire_reading(pf=-0.7))).readings
        assert reading.pf == -0.7

    @pytest.mark.parametrize(
        "fields",
        [
            {"seq": -1},  # a counter, not a measurement
            {"seq": 1.0},
            {"seq": "1021"},
            {"seq": True},
            {"ts": "yesterday"},
            {"ts": None},
            {"energy_wh": None},
            {"energy_wh": "lots"},
        ],
    )
    def test_schema_violation(self, record, wire_reading, fields: dict) -> None:
        assert reasons(decode(record(wire_reading(**fields)))) == [(Reason.SCHEMA_VIOLATION, 0)]

    @pytest.mark.parametrize(
        "fields",
        [
            {"pf": -1.5},  # out of range, not a "negative value"
            {"pf": 1.5},
            {"energy_wh": 1e200},  # would not fit DynamoDB's number range
            {"power_w": 5e9},
            {"voltage_v": 1e7},
        ],
    )
    def test_out_of_range(self, record, wire_reading, fields: dict) -> None:
        assert reasons(decode(record(wire_reading(**fields)))) == [(Reason.OUT_OF_RANGE, 0)]

    def test_reading_that_is_not_an_object(self, record, wire_reading) -> None:
        decoded = decode(record(wire_reading(seq=1), [1, 2]))
        assert [r.seq for r in decoded.readings] == [1]
        assert reasons(decoded) == [(Reason.SCHEMA_VIOLATION, 1)]

    def test_bad_reading_leaves_the_valid_ones_beside_it(self, record, wire_reading) -> None:
        bad_power = wire_reading(seq=2, power_w=float("nan"))
        future = wire_reading(seq=4, ts="2026-11-27T14:00:00Z")
        data = record(wire_reading(seq=1), bad_power, wire_reading(seq=3), future, wire_reading(seq=5))
        decoded = decode(data)
        assert [r.seq for r in decoded.readings] == [1, 3, 5]
        assert reasons(decoded) == [(Reason.NON_FINITE_VALUE, 1), (Reason.FUTURE_TIMESTAMP, 3)]
        # A rejection points into the record (the dead letter holds its bytes once).
        sent = json.loads(data)["readings"]
        assert sent[decoded.rejections[1].index] == future
        assert sent[decoded.rejections[0].index]["seq"] == 2


class TestFutureTimestamp:
    """The limit is 5 minutes after the moment the rule received the message (13:05)."""

    @pytest.mark.parametrize(
        ("ts", "rejected"),
        [
            ("2026-11-27T13:10:00Z", False),  # exactly 5 minutes after receipt
            ("2026-11-27T13:10:00.001Z", True),
            ("2026-11-27T13:30:00Z", True),
            ("2026-11-27T13:09:59Z", False),
            ("2026-11-20T13:00:00Z", False),  # old readings (spool drained late) are fine
        ],
    )
    def test_limit_from_received_ms(self, record, wire_reading, ts: str, rejected: bool) -> None:
        decoded = decode(record(wire_reading(ts=ts)))
        assert reasons(decoded) == ([(Reason.FUTURE_TIMESTAMP, 0)] if rejected else [])
        assert len(decoded.readings) == (0 if rejected else 1)

    @pytest.mark.parametrize("received", ["__omit__", "1795784700000", None, True, 1.7e12])
    def test_missing_or_odd_received_ms_uses_the_fallback(self, record, wire_reading, omit, received) -> None:
        # The fallback is 13:06, so 13:11 is within the limit, 13:11:00.001 is not; with the
        # record's own 13:05 both would be rejected.
        envelope = {"received_ms": omit if received == "__omit__" else received}
        at_limit = decode(record(wire_reading(ts="2026-11-27T13:11:00Z"), **envelope))
        past_limit = decode(record(wire_reading(ts="2026-11-27T13:11:00.001Z"), **envelope))
        assert reasons(at_limit) == []
        assert reasons(past_limit) == [(Reason.FUTURE_TIMESTAMP, 0)]

    def test_received_ms_in_the_record_wins_over_the_fallback(self, record, wire_reading) -> None:
        decoded = decode(record(wire_reading(ts="2026-11-27T13:10:30Z")))
        assert reasons(decoded) == [(Reason.FUTURE_TIMESTAMP, 0)]

    def test_tolerance_is_a_parameter(self, record, wire_reading) -> None:
        data = record(wire_reading(ts="2026-11-27T13:06:00Z"))
        assert decode_record(data, fallback_received_ms=0, future_tolerance_ms=60_000).rejections == []
        late = decode_record(data, fallback_received_ms=0, future_tolerance_ms=59_999)
        assert reasons(late) == [(Reason.FUTURE_TIMESTAMP, 0)]
