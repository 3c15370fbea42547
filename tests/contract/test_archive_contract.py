"""The archive port (``sinks.ports.ArchivePort``): gzip JSON lines whose bytes depend on the lines alone."""

from __future__ import annotations

import json

import pytest

from sinks.archive import dead_letter_key, raw_key

SHARD = "shardId-000000000003"
KEY = raw_key(SHARD, "100", "200", 1_795_784_700_000)
LINES = [
    {
        "shard_id": SHARD,
        "sequence_number": "100",
        "partition_key": "box-0001",
        "approximate_arrival_ms": 1,
        "data": '{"v":1,"device_id":"box-0001"}',
    },
    {
        "shard_id": SHARD,
        "sequence_number": "200",
        "partition_key": "box-0002",
        "approximate_arrival_ms": 2,
        "data_b64": "/w==",
        "note": "Ьox ✓",
        "power_w": 0.1 + 0.2,
    },
]


def test_put_returns_the_object_s_size_and_get_the_lines(archive) -> None:
    size = archive.store.put(KEY, LINES)
    assert size == len(archive.body(KEY)) > 0
    assert archive.store.get(KEY) == LINES


def test_the_same_lines_give_the_same_bytes(archive) -> None:
    archive.store.put(KEY, LINES)
    first = archive.body(KEY)
    archive.store.put(KEY, (dict(line) for line in LINES))  # a replay, from a generator
    assert archive.body(KEY) == first


def test_the_last_put_of_a_key_wins(archive) -> None:
    archive.store.put(KEY, LINES)
    archive.store.put(KEY, LINES[:1])
    assert archive.store.get(KEY) == LINES[:1]


def test_an_empty_batch_is_an_empty_object(archive) -> None:
    archive.store.put(KEY, [])
    assert archive.store.get(KEY) == []


def test_a_line_orjson_refuses_is_escaped_not_lost(archive) -> None:
    reading = json.loads('{"device": "\\ud800", "seq": 1}')
    archive.store.put(KEY, [{"reason": "schema_violation", "reading": reading}])
    [back] = archive.store.get(KEY)
    assert back["reading"] == {"device": "\ud800", "seq": 1}


def test_a_key_never_put_raises(archive) -> None:
    with pytest.raises(Exception):  # noqa: B017 - which exception is the backend's (see sinks.ports)
        archive.store.get(KEY)


def test_keys_lists_a_prefix_in_ascending_order(archive) -> None:
    keys = [raw_key(SHARD, str(first), str(first + 9), 1_795_784_700_000) for first in (30, 10, 20)]
    keys.append(dead_letter_key(SHARD, "10", "19", 1_795_784_700_000))
    for key in keys:
        archive.store.put(key, LINES[:1])
    assert archive.store.keys("raw/") == sorted(k for k in keys if k.startswith("raw/"))
    assert archive.store.keys("dead-letter/") == [keys[-1]]
    assert archive.store.keys("nothing/") == []
