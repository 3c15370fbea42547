"""The live view port (``sinks.ports.LivePort``): devices packed per group, one marker per shard."""

from __future__ import annotations

import pytest

from batcher.ledger import Live
from readings.errors import FencedError
from sinks.live import LIVE_BUCKET, attr_device, device_attr, entry, group_of, live_key, marker_attr
from sinks.position import position_marker
from sinks.read import logical_buckets

SHARD = "shardId-000000000003"
LIVE_GROUPS = 8
"""The live view's groups in this module (the fixture reads it)."""


def devices_by_group() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for n in range(200):
        device = f"box-{n:04d}"
        out.setdefault(group_of(device, LIVE_GROUPS), []).append(device)
    return out


GROUPS = devices_by_group()
LOW, HIGH = sorted(GROUPS)[0], sorted(GROUPS)[-1]
A, B = GROUPS[LOW][:2]  # one group
C = GROUPS[HIGH][0]  # another, later in order


def live(stored: int, power_w: float | None = 512.25, hour_power_max_w: float | None = 900.0) -> Live:
    return Live(
        stored=stored,
        ts_ms=1_795_784_700_000 + stored,
        power_w=power_w,
        register_wh=123456.7891 + stored,
        hour="h#2026-11-27T13",
        hour_energy_wh=0.1 + 0.2,
        hour_samples=stored,
        hour_power_max_w=hour_power_max_w,
    )


def group_item(subject, group: int) -> dict:
    key = live_key(group)
    return next((i for i in subject.items() if i["device_id"] == key["device_id"] and i["bucket"] == LIVE_BUCKET), {})


def test_one_item_per_group_holds_each_device_s_entry_and_the_shard_s_marker(live_view) -> None:
    marker = position_marker(200)
    written, units = live_view.store.write(SHARD, marker, {A: live(1), B: live(2, power_w=None), C: live(3)})
    assert written == 2 and units > 0
    low = group_item(live_view, LOW)
    assert low == {**live_key(LOW), marker_attr(SHARD): marker, A: entry(live(1)), B: entry(live(2, power_w=None))}
    assert group_item(live_view, HIGH) == {**live_key(HIGH), marker_attr(SHARD): marker, C: entry(live(3))}
    assert low[B][1] is None and low[A][3] == round(0.1 + 0.2, 3)


def test_the_same_batch_again_rewrites_the_same_values(live_view) -> None:
    live_view.store.write(SHARD, position_marker(200), {A: live(1), C: live(3)})
    before = live_view.items()
    assert live_view.store.write(SHARD, position_marker(200), {A: live(1), C: live(3)})[0] == 2
    assert live_view.items() == before


def test_a_later_batch_overwrites_and_keeps_the_devices_it_does_not_name(live_view) -> None:
    live_view.store.write(SHARD, position_marker(200), {A: live(1), B: live(2)})
    live_view.store.write(SHARD, position_marker(300), {A: live(5)})
    item = group_item(live_view, LOW)
    assert (item[A], item[B], item[marker_attr(SHARD)]) == (entry(live(5)), entry(live(2)), position_marker(300))


def test_an_older_batch_is_fenced_and_changes_nothing(live_view) -> None:
    live_view.store.write(SHARD, position_marker(300), {A: live(5)})
    before = live_view.items()
    with pytest.raises(FencedError):
        live_view.store.write(SHARD, position_marker(200), {A: live(1)})
    assert live_view.items() == before


def test_groups_are_written_in_order_and_a_refusal_leaves_the_ones_before_it(live_view) -> None:
    live_view.store.write(SHARD, position_marker(300), {C: live(5)})
    with pytest.raises(FencedError):
        live_view.store.write(SHARD, position_marker(200), {A: live(1), C: live(1)})
    assert group_item(live_view, LOW)[A] == entry(live(1))
    assert group_item(live_view, HIGH)[C] == entry(live(5))


def test_shards_sharing_an_item_keep_their_own_markers_and_devices(live_view) -> None:
    live_view.store.write("shardId-a", position_marker(900), {A: live(1)})
    live_view.store.write("shardId-b", position_marker(100), {B: live(2)})
    live_view.store.write("shardId-a", position_marker(950), {A: live(3)})
    item = group_item(live_view, LOW)
    assert item[marker_attr("shardId-a")] == position_marker(950) and item[marker_attr("shardId-b")] == position_marker(
        100
    )
    assert (item[A], item[B]) == (entry(live(3)), entry(live(2)))
    with pytest.raises(FencedError):
        live_view.store.write("shardId-a", position_marker(920), {A: live(2)})


def test_a_child_removes_its_ancestors_markers(live_view) -> None:
    live_view.store.write("shardId-parent", position_marker(900), {A: live(1), C: live(1)})
    live_view.store.write(
        "shardId-child", position_marker(100), {A: live(2)}, ancestors=["shardId-parent", "shardId-gone"]
    )
    low, high = group_item(live_view, LOW), group_item(live_view, HIGH)
    assert marker_attr("shardId-parent") not in low and low[A] == entry(live(2))
    assert high[marker_attr("shardId-parent")] == position_marker(900)  # an item the child did not write


def test_an_ancestor_writing_after_its_marker_was_removed_is_not_refused(live_view) -> None:
    """Not promised (see ``sinks.ports``): fencing a late parent rests on the manifest and the aggregates."""
    live_view.store.write("shardId-parent", position_marker(900), {A: live(1)})
    live_view.store.write("shardId-child", position_marker(100), {A: live(2)}, ancestors=["shardId-parent"])
    live_view.store.write("shardId-parent", position_marker(800), {A: live(0)})
    assert group_item(live_view, LOW)[A] == entry(live(0))


def test_nothing_to_write_writes_nothing(live_view) -> None:
    assert live_view.store.write(SHARD, position_marker(1), {}) == (0, 0.0)
    assert live_view.items() == []


@pytest.mark.parametrize("device", ["bucket", "device_id", "d", "v"])
def test_every_thing_name_can_be_a_live_device(live_view, device: str) -> None:
    """Thing names include the key attributes' names; such a device is stored under ``d#<name>``."""
    live_view.store.write(SHARD, position_marker(1), {device: live(1)})
    item = group_item(live_view, group_of(device, LIVE_GROUPS))
    assert item[device_attr(device)] == entry(live(1))
    assert attr_device(device_attr(device)) == device
    assert {d for d, _ in logical_buckets([item])} == {device}
