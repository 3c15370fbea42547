"""The topic rule as a pure function, and its SQL against deploy/ecs/rule.sql."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.rule import RULE_SQL, apply_rule
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
    "topic", ["energy/consumption", "energy/consumption/", "energy/consumption/a/b", "energy/other/box-a", "x/consumption/a"]
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
