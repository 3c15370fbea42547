"""The pure parts of the rebuild: archive keys, shard order, the range, a unit's writes, the differences."""

from __future__ import annotations

import pytest

from batcher import BucketAggregate
from consumer.rebuild_plan import (
    Params,
    UnitWrites,
    diff_row,
    differences,
    hours_of,
    objects_by_shard,
    parse_day,
    parse_raw_key,
    predecessors,
    same_figures,
    shard_number,
    topological,
)

S0, S1, S2, S3, S4 = (f"shardId-00000000000{n}" for n in range(5))


def key(day: str, hour: str, shard: str, first: int, last: int) -> str:
    return f"raw/dt={day}/hour={hour}/shard={shard}/{first}-{last}.jsonl.gz"


def params(**overrides) -> Params:
    base = dict(
        first_ms=parse_day("2026-11-27"),
        end_ms=parse_day("2026-11-29"),
        devices=(),
        table="t",
        tolerance_wh=1.0,
        max_power_w=100_000.0,
        anchor_window_ms=86_400_000,
        future_tolerance_ms=300_000,
    )
    return Params(**{**base, **overrides})


def test_raw_keys_are_parsed_and_other_keys_ignored() -> None:
    obj = parse_raw_key(key("2026-11-27", "13", S1, 495, 499))
    assert obj is not None and (obj.day, obj.hour, obj.shard_id, obj.first, obj.last) == (
        "2026-11-27",
        "13",
        S1,
        495,
        499,
    )
    assert parse_raw_key("dead-letter/dt=2026-11-27/hour=13/shard=s/1-2.jsonl.gz") is None
    assert parse_raw_key("raw/dt=2026-11-27/hour=13/shard=s/1-2.json") is None


def test_each_shard_s_objects_come_in_sequence_number_order_up_to_the_last_day() -> None:
    keys = [
        # Sequence numbers grow in width: text order would put 1000 before 999.
        key("2026-11-27", "13", S0, 1000, 1999),
        key("2026-11-27", "13", S0, 10, 999),
        key("2026-11-28", "00", S1, 5, 6),
        key("2026-11-29", "00", S0, 2000, 2001),
        "raw/readme.txt",
    ]
    got = objects_by_shard(keys, last_day="2026-11-28")
    assert {s: [o.first for o in objs] for s, objs in got.items()} == {S0: [10, 1000], S1: [5]}


def test_objects_are_committed_in_runs_of_one_arrival_hour() -> None:
    objs = [
        parse_raw_key(k)
        for k in (
            key("2026-11-27", "13", S0, 1, 2),
            key("2026-11-27", "13", S0, 3, 4),
            key("2026-11-27", "14", S0, 5, 6),
        )
    ]
    assert [[o.first for o in run] for run in hours_of(objs)] == [[1, 3], [5]]


def test_shards_the_stream_lists_wait_only_for_their_listed_ancestors() -> None:
    listed = {S0: (), S1: (S0,), S2: (S0,), S3: (S1, S2)}
    preds = predecessors([S0, S1, S2, S3], listed)
    assert preds == {S0: set(), S1: {S0}, S2: {S0}, S3: {S0, S1, S2}}


def test_a_shard_no_longer_listed_comes_before_every_shard_numbered_above_it() -> None:
    # S0 and S1 closed long ago (gone from the listing); S2 and S3 are open, and S4 has no
    # relation to anything listed.
    listed = {S2: (S1,), S3: (S1,), S4: ()}
    preds = predecessors([S0, S1, S2, S3, S4], listed)
    assert preds[S0] == set() and preds[S1] == {S0}
    assert preds[S2] == preds[S3] == preds[S4] == {S0, S1}
    order = topological(preds)
    assert order.index(S0) < order.index(S1) < min(order.index(S2), order.index(S3), order.index(S4))


def test_without_any_listing_the_shards_go_one_after_the_other_by_number() -> None:
    preds = predecessors([S2, S0, S1], None)
    assert topological(preds) == [S0, S1, S2]
    assert preds[S2] == {S0, S1}
    assert shard_number("shardId-000000000042") == 42 and shard_number("odd") == -1


def test_the_range_covers_hours_and_days_starting_inside_it() -> None:
    p = params()
    assert p.covers("h#2026-11-27T00") and p.covers("h#2026-11-28T23") and p.covers("d#2026-11-28")
    assert not p.covers("h#2026-11-26T23") and not p.covers("d#2026-11-29") and not p.covers("live")
    assert p.last_day == "2027-01-04"  # 36 days after --to: no later record can touch the range


def test_the_id_is_a_function_of_every_parameter() -> None:
    ids = {
        params().rebuild_id,
        params(tolerance_wh=0.5).rebuild_id,
        params(devices=("box-1",)).rebuild_id,
        params(table="other").rebuild_id,
        params(end_ms=parse_day("2026-11-30")).rebuild_id,
    }
    assert len(ids) == 5
    assert params(devices=("b", "a")).rebuild_id == params(devices=("a", "b")).rebuild_id
    assert params(devices=("a",)).wants("a") and not params(devices=("a",)).wants("b") and params().wants("b")


def agg(energy_wh: float, samples: int = 1) -> BucketAggregate:
    return BucketAggregate(energy_wh=energy_wh, samples=samples)


def test_a_unit_folds_corrections_into_what_it_closed_and_keeps_the_others_apart() -> None:
    h13, h14, h12 = ("d", "h#2026-11-27T13"), ("d", "h#2026-11-27T14"), ("d", "h#2026-11-27T12")
    writes = UnitWrites.empty()
    writes.add({h13: agg(1.0)}, {h12: agg(0.5)})
    writes.add({h14: agg(2.0)}, {h13: agg(0.25), h12: agg(0.125)})
    assert writes.closed == {h13: agg(1.25, 2), h14: agg(2.0)}
    assert writes.corrections == {h12: agg(0.625, 2)}


def item(bucket: str, energy_wh: float, samples: int = 3, w: str = "s0", s: str = "5") -> dict:
    return {"device_id": "d", "bucket": bucket, "energy_wh": energy_wh, "samples": samples, "w": w, "s": s}


def test_differences_compare_figures_not_writer_markers() -> None:
    a, b = item("h#2026-11-27T13", 1.0), item("h#2026-11-27T13", 1.0 + 1e-12, w="s1", s="9")
    assert same_figures(a, b) and not same_figures(a, item("h#2026-11-27T13", 1.001))
    assert not same_figures(a, {**a, "resets": 1}) and not same_figures(a, item("h#2026-11-27T13", 1.0, samples=4))
    rebuilt = {"h#2026-11-27T13": a, "h#2026-11-27T14": item("h#2026-11-27T14", 2.0)}
    stored = {"h#2026-11-27T13": b, "h#2026-11-27T15": item("h#2026-11-27T15", 3.0)}
    diffs, kept = differences("d", rebuilt, stored, {"s0": 10})
    assert [(d.bucket, d.stored is None, d.rebuilt is None) for d in diffs] == [
        ("h#2026-11-27T14", True, False),
        ("h#2026-11-27T15", False, True),
    ]
    assert kept == 0
    assert diff_row(diffs[0]) == ["d", "h#2026-11-27T14", "", "2.0", "", "3"]


@pytest.mark.parametrize(("batch", "kept"), [("10", 0), ("11", 1)])
def test_a_stored_item_written_after_what_was_read_is_kept(batch: str, kept: int) -> None:
    stored = {"h#2026-11-27T13": item("h#2026-11-27T13", 7.0, w="s0", s=batch)}
    rebuilt = {"h#2026-11-27T13": item("h#2026-11-27T13", 1.0)}
    diffs, got = differences("d", rebuilt, stored, {"s0": 10})
    assert (len(diffs), got) == (1 - kept, kept)
