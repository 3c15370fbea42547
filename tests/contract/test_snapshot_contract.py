"""The snapshot port (``sinks.ports.SnapshotPort``): deterministic objects, None when missing."""

from __future__ import annotations

import pytest

from readings.errors import SinkError
from sinks.snapshot import snapshot_key

SHARD = "shardId-000000000003"
KEY = snapshot_key(SHARD, "200")
DEVICES = {
    "box-0001": {
        "state": {
            "newest": {"seq": 7, "ts_ms": 1_795_784_700_000, "energy_wh": 123456.7},
            "seen": [[1, 7]],
            "power_w": None,
        },
        "ledger": {"open": {"h#2026-11-27T13": {"energy_wh": 0.1 + 0.2, "samples": 3}}, "stored": 7},
    },
    "box-0002": {"state": {"newest": None}, "ledger": {"open": {}, "stored": 0}},
}


def test_put_returns_the_size_and_get_the_devices(snapshots) -> None:
    size = snapshots.store.put(KEY, SHARD, "200", DEVICES)
    assert size == len(snapshots.body(KEY)) > 0
    assert snapshots.store.get(KEY) == DEVICES


def test_floats_come_back_bit_for_bit(snapshots) -> None:
    values = [0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 123456.7]
    snapshots.store.put(KEY, SHARD, "200", {"box-0001": {"values": values}})
    back = snapshots.store.get(KEY)["box-0001"]["values"]
    assert [v.hex() for v in back] == [v.hex() for v in values]


def test_the_same_devices_give_the_same_bytes_whatever_their_order(snapshots) -> None:
    snapshots.store.put(KEY, SHARD, "200", DEVICES)
    first = snapshots.body(KEY)
    snapshots.store.put(KEY, SHARD, "200", dict(reversed(list(DEVICES.items()))))
    assert snapshots.body(KEY) == first


def test_the_last_put_of_a_key_wins(snapshots) -> None:
    snapshots.store.put(KEY, SHARD, "200", DEVICES)
    snapshots.store.put(KEY, SHARD, "200", {})
    assert snapshots.store.get(KEY) == {}


def test_a_missing_snapshot_is_none(snapshots) -> None:
    assert snapshots.store.get(KEY) is None


def test_delete_removes_and_is_idempotent(snapshots) -> None:
    snapshots.store.put(KEY, SHARD, "200", DEVICES)
    snapshots.store.delete(KEY)
    assert snapshots.store.get(KEY) is None
    snapshots.store.delete(KEY)
    snapshots.store.delete(snapshot_key(SHARD, "never-written"))


def test_snapshots_of_one_shard_are_apart(snapshots) -> None:
    later = snapshot_key(SHARD, "300")
    snapshots.store.put(KEY, SHARD, "200", DEVICES)
    snapshots.store.put(later, SHARD, "300", {})
    snapshots.store.delete(KEY)
    assert snapshots.store.get(later) == {}


def test_an_object_of_another_format_is_refused(snapshots) -> None:
    import gzip

    import orjson

    snapshots.seed(KEY, gzip.compress(orjson.dumps({"format": 99, "devices": {}}), mtime=0))
    with pytest.raises(SinkError):
        snapshots.store.get(KEY)
