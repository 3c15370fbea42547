"""The range port (``sinks.ports.RangePort``): a device's range read back, items replaced on their writer pair."""

from __future__ import annotations

from batcher import BucketAggregate
from sinks.aggregates import bucket_item
from sinks.dynamo import encode_item
from sinks.ranges import Change

DAY_MS = 86_400_000
NOV_27_MS = 1_795_737_600_000  # 2026-11-27T00:00Z


def item(device_id: str, bucket: str, energy_wh: float, w: str | None = "shard-a", s: str | None = "0007") -> dict:
    agg = BucketAggregate(energy_wh=energy_wh, samples=3, first_ts_ms=NOV_27_MS, last_ts_ms=NOV_27_MS + 5)
    out = bucket_item(device_id, bucket, agg)
    if w is not None:
        out["w"] = w
    if s is not None:
        out["s"] = s
    return out


def seed(subject, *items: dict) -> None:
    for one in items:
        subject.seed(encode_item(one))


def test_read_gives_the_device_s_hours_and_days_inside_the_range_only(ranges) -> None:
    inside = [
        item("box-1", "h#2026-11-27T00", 1.0),
        item("box-1", "h#2026-11-28T23", 2.0),
        item("box-1", "d#2026-11-28", 3.0),
    ]
    outside = [
        item("box-1", "h#2026-11-26T23", 4.0),
        item("box-1", "h#2026-11-29T00", 5.0),
        item("box-1", "d#2026-11-29", 6.0),
        item("box-2", "h#2026-11-27T05", 7.0),
        {"device_id": "box-1", "bucket": "live", "x": 1},
    ]
    seed(ranges, *inside, *outside)
    got = ranges.store.read("box-1", NOV_27_MS, NOV_27_MS + 2 * DAY_MS)
    assert got == {i["bucket"]: i for i in inside}
    assert ranges.store.read("box-9", NOV_27_MS, NOV_27_MS + DAY_MS) == {}


def test_changes_apply_when_the_item_is_still_the_one_read(ranges) -> None:
    kept, gone = item("box-1", "h#2026-11-27T01", 1.0), item("box-1", "h#2026-11-27T02", 2.0)
    seed(ranges, kept, gone)
    new = item("box-1", "h#2026-11-27T01", 9.5, s="0009")
    fresh = item("box-1", "h#2026-11-27T03", 3.0)
    result = ranges.store.replace(
        [
            Change("box-1", "h#2026-11-27T01", new, kept),
            Change("box-1", "h#2026-11-27T02", None, gone),
            Change("box-1", "h#2026-11-27T03", fresh, None),
        ]
    )
    assert (result.written, result.deleted, result.refused) == (2, 1, [])
    assert result.consumed_wcu > 0
    assert ranges.store.read("box-1", NOV_27_MS, NOV_27_MS + DAY_MS) == {
        "h#2026-11-27T01": new,
        "h#2026-11-27T03": fresh,
    }


def test_a_change_planned_against_another_item_is_refused_and_listed(ranges) -> None:
    stored = item("box-1", "h#2026-11-27T01", 1.0, s="0008")
    unmarked = item("box-1", "h#2026-11-27T02", 2.0, w=None, s=None)
    seed(ranges, stored, unmarked)
    read_earlier = item("box-1", "h#2026-11-27T01", 1.0, s="0007")
    result = ranges.store.replace(
        [
            Change("box-1", "h#2026-11-27T01", item("box-1", "h#2026-11-27T01", 5.0), read_earlier),
            Change("box-1", "h#2026-11-27T01", None, None),
            Change("box-1", "h#2026-11-27T02", item("box-1", "h#2026-11-27T02", 5.0), stored),
            Change("box-1", "h#2026-11-27T04", item("box-1", "h#2026-11-27T04", 5.0), stored),
        ]
    )
    assert (result.written, result.deleted) == (0, 0)
    assert sorted(result.refused) == [
        ("box-1", "h#2026-11-27T01"),
        ("box-1", "h#2026-11-27T01"),
        ("box-1", "h#2026-11-27T02"),
        ("box-1", "h#2026-11-27T04"),
    ]
    assert ranges.store.read("box-1", NOV_27_MS, NOV_27_MS + DAY_MS) == {
        "h#2026-11-27T01": stored,
        "h#2026-11-27T02": unmarked,
    }
    # An item without a writer pair is replaced when it was read without one.
    done = ranges.store.replace([Change("box-1", "h#2026-11-27T02", None, unmarked)])
    assert (done.deleted, done.refused) == (1, [])


def test_the_same_changes_twice_apply_once(ranges) -> None:
    new = item("box-1", "h#2026-11-27T05", 4.25)
    first = ranges.store.replace([Change("box-1", "h#2026-11-27T05", new, None)])
    again = ranges.store.replace([Change("box-1", "h#2026-11-27T05", new, None)])
    assert (first.written, again.written, again.refused) == (1, 0, [("box-1", "h#2026-11-27T05")])
    assert ranges.items() == [new]
