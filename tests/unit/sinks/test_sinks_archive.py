"""Archive objects are byte-stable and never refuse a line."""

from __future__ import annotations

import json

from sinks.archive import decode_lines, encode_lines, raw_key


def test_the_same_lines_give_the_same_bytes_and_key() -> None:
    lines = [{"sequence_number": "1", "data": '{"v": 1}'}, {"sequence_number": "2", "data": "x"}]
    assert encode_lines(lines) == encode_lines([dict(x) for x in lines])
    assert decode_lines(encode_lines(lines)) == lines
    assert raw_key("shardId-1", "1", "2", 1_795_000_000_000) == raw_key("shardId-1", "1", "2", 1_795_000_000_000)
    assert raw_key("shardId-1", "1", "2", 1_795_000_000_000).startswith("raw/dt=2026-11-18/hour=11/shard=shardId-1/")


def test_lines_orjson_refuses_are_escaped_not_lost() -> None:
    reading = json.loads('{"device": "\\ud800", "power_w": NaN}')
    [back] = decode_lines(encode_lines([{"reason": "non_finite_value", "reading": reading}]))
    assert back["reason"] == "non_finite_value" and back["reading"]["device"] == "\ud800"
