"""The topic rule as a pure function, and its SQL against deploy/ecs/rule.sql."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rule import RULE_SQL, RuleFailed, apply_rule, evaluate
from readings.models import RuleRecord

RULE_FILE = Path(__file__).resolve().parents[3] / "deploy" / "ecs" / "rule.sql"
PAYLOAD = {"v": 1, "device_id": "box-a", "readings": [{"seq": 1, "ts": "2026-11-27T13:00:00Z", "energy_wh": 10.5}]}


def test_adds_thing_from_topic_and_received_ms() -> None:
    out = apply_rule("energy/consumption/box-a", json.dumps(PAYLOAD).encode(), 1_795_000_000_123)
    assert out is not None
    doc = json.loads(out)
    assert doc == {**PAYLOAD, "thing": "box-a", "received_ms": 1_795_000_000_123}
    assert list(doc)[-2:] == ["thing", "received_ms"]
    RuleRecord.model_validate_json(out)


def test_spoofed_device_id_keeps_the_topic_identity() -> None:
    out = apply_rule("energy/consumption/box-a", json.dumps({**PAYLOAD, "device_id": "box-b"}).encode(), 5)
    doc = json.loads(out)
    assert (doc["device_id"], doc["thing"]) == ("box-b", "box-a")


def test_payload_cannot_forge_thing_or_received_ms() -> None:
    forged = {**PAYLOAD, "thing": "box-b", "received_ms": 1}
    doc = json.loads(apply_rule("energy/consumption/box-a", json.dumps(forged).encode(), 99))
    assert (doc["thing"], doc["received_ms"]) == ("box-a", 99)


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"\xff\xfe", b"[1, 2]", b"42", b'"text"', b"", b'{"v": NaN}', b'{"a": Infinity}', b"{"],
)
def test_payload_that_is_not_a_json_object_fails_the_rule(payload: bytes) -> None:
    assert apply_rule("energy/consumption/box-a", payload, 1) is None


@pytest.mark.parametrize(
    "topic",
    ["energy/consumption", "energy/consumption/", "energy/consumption/a/b", "energy/other/box-a", "x/consumption/a"],
)
def test_topics_outside_the_filter_do_not_fire(topic: str) -> None:
    assert apply_rule(topic, b"{}", 1) is None


def _normalise(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()
    # keywords and function names are case-insensitive; the topic filter literal is not
    parts = re.split(r"('[^']*')", sql)
    return "".join(p if p.startswith("'") else p.lower() for p in parts).replace(" ,", ",")


def test_rule_sql_matches_the_deployed_rule() -> None:
    assert _normalise(RULE_FILE.read_text()) == _normalise(RULE_SQL)


# -- payloads no encoder can round-trip: a rule failure, never an exception ---------------------

TOPIC = "energy/consumption/box-a"


def nested(depth: int) -> bytes:
    return b'{"x":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [254, 300, 2_000, 100_000])
def test_deep_nesting_fails_the_rule_instead_of_raising(depth: int) -> None:
    assert apply_rule(TOPIC, nested(depth), 0) is None


def test_nesting_the_encoder_still_writes_is_forwarded() -> None:
    doc = json.loads(apply_rule(TOPIC, nested(253), 7))
    assert (doc["thing"], doc["received_ms"]) == ("box-a", 7)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"seq": 123456789012345678901234567890}',
        b'{"seq": -9223372036854775809}',
        b'{"seq": 18446744073709551616}',
        b'{"energy_wh": 1e400}',
        b'{"a": "\\ud800"}',
    ],
)
def test_numbers_and_strings_the_rule_would_change_fail_it(payload: bytes) -> None:
    # orjson reads integers beyond 64 bits as floats and writes infinity as null: the record
    # would carry a value the box never sent, so the rule fails instead.
    assert apply_rule(TOPIC, payload, 1) is None


def test_64_bit_integers_pass_unchanged() -> None:
    doc = json.loads(apply_rule(TOPIC, b'{"a": 18446744073709551615, "b": -9223372036854775808}', 1))
    assert (doc["a"], doc["b"]) == (18446744073709551615, -9223372036854775808)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff", "not_utf8"),
        (b"{", "not_json"),
        (b'{"v": NaN}', "not_json"),
        (b"[1]", "not_an_object"),
        (nested(300), "not_encodable"),
        (b'{"seq": 123456789012345678901234567890}', "not_encodable"),
    ],
)
def test_a_failed_rule_says_why(payload: bytes, reason: str) -> None:
    assert evaluate(TOPIC, payload, 1) == RuleFailed(reason)
    assert evaluate("energy/other/box-a", b"{}", 1) == RuleFailed("topic_outside_filter")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)


def _assert_rule_record(out: bytes | None, received_ms: int) -> None:
    if out is None:
        return
    doc = json.loads(out)
    assert isinstance(doc, dict)
    assert (doc["thing"], doc["received_ms"]) == ("box-a", received_ms)


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=2_000), received_ms=st.integers(min_value=0, max_value=2**62))
def test_arbitrary_bytes_never_raise(payload: bytes, received_ms: int) -> None:
    _assert_rule_record(apply_rule(TOPIC, payload, received_ms), received_ms)


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    depth=st.integers(min_value=0, max_value=600),
    keys=st.dictionaries(st.sampled_from(["thing", "received_ms", "device_id", "v"]), json_values, max_size=3),
)
def test_arbitrary_json_never_raises_and_keeps_the_rule_fields(value: object, depth: int, keys: dict) -> None:
    doc = {**keys, "value": value}
    for _ in range(depth):
        doc = {"x": [doc]}
    payload = json.dumps(doc).encode()
    _assert_rule_record(apply_rule(TOPIC, payload, 42), 42)
