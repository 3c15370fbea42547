"""The device registry port (``sinks.ports.RegistryPort``): one entry per device under ``registry#``."""

from __future__ import annotations

import pytest

from readings.errors import RegistryError
from sinks.dynamo import encode_item
from sinks.read import logical_buckets
from sinks.registry import PARTITION, DeviceInfo, devices_matching

KITCHEN = DeviceInfo(
    "box-0001",
    tz="Europe/Paris",
    name="Kitchen plug",
    site="paris-1",
    tariff="edf-tempo",
    tags=frozenset({"plug", "kitchen"}),
    power_limit_w=3500.0,
    daily_budget_kwh=12.5,
)


def fleet(registry) -> None:
    registry.store.put(KITCHEN)
    registry.store.put(DeviceInfo("box-0002", site="paris-1", tags=frozenset({"meter"})))
    registry.store.put(DeviceInfo("box-0003", tz="America/New_York", site="nyc", tags=frozenset({"plug"})))


def test_an_entry_put_reads_back_whole_and_a_plain_one_with_its_defaults(registry) -> None:
    registry.store.put(KITCHEN)
    registry.store.put(DeviceInfo("box-0002"))
    assert registry.store.get("box-0001") == KITCHEN
    assert registry.store.get("box-0002") == DeviceInfo("box-0002", tz="UTC")
    assert registry.store.get("box-0009") is None


def test_the_item_sits_under_the_registry_partition_with_unset_fields_absent(registry) -> None:
    registry.store.put(DeviceInfo("box-0002", name="Meter"))
    assert registry.items() == [{"device_id": PARTITION, "bucket": "box-0002", "tz": "UTC", "name": "Meter"}]


def test_the_last_put_wins_and_a_put_that_must_not_overwrite_is_refused(registry) -> None:
    registry.store.put(DeviceInfo("box-0001", name="old"))
    registry.store.put(KITCHEN)
    assert registry.store.get("box-0001") == KITCHEN
    with pytest.raises(RegistryError, match="registered already"):
        registry.store.put(DeviceInfo("box-0001"), overwrite=False)
    assert registry.store.get("box-0001") == KITCHEN
    registry.store.put(DeviceInfo("box-0002"), overwrite=False)
    assert registry.store.get("box-0002") == DeviceInfo("box-0002")


def test_get_many_returns_the_registered_ones_and_takes_an_id_twice_as_once(registry) -> None:
    fleet(registry)
    found = registry.store.get_many(["box-0003", "box-0001", "box-0009", "box-0001"])
    assert found == {"box-0001": KITCHEN, "box-0003": registry.store.get("box-0003")}
    assert registry.store.get_many([]) == {}


def test_get_many_reads_more_than_one_request_holds(registry) -> None:
    ids = [f"box-{n:04d}" for n in range(130)]
    for device_id in ids[::2]:
        registry.store.put(DeviceInfo(device_id))
    assert sorted(registry.store.get_many(ids)) == ids[::2]


def test_update_changes_the_given_fields_and_leaves_the_others(registry) -> None:
    registry.store.put(KITCHEN)
    after = registry.store.update("box-0001", tz="Europe/Berlin", power_limit_w=2000, tags=frozenset({"plug"}))
    expected = DeviceInfo(**{**_fields(KITCHEN), "tz": "Europe/Berlin", "power_limit_w": 2000.0, "tags": {"plug"}})
    assert after == expected
    assert registry.store.get("box-0001") == expected


def test_none_unsets_a_field_and_empty_tags_remove_them(registry) -> None:
    registry.store.put(KITCHEN)
    after = registry.store.update("box-0001", name=None, daily_budget_kwh=None, tags=frozenset())
    assert (after.name, after.daily_budget_kwh, after.tags, after.site) == (None, None, frozenset(), "paris-1")
    item = next(i for i in registry.items() if i["bucket"] == "box-0001")
    assert {"name", "daily_budget_kwh", "tags"}.isdisjoint(item)
    assert registry.store.get("box-0001") == after


def test_update_of_a_device_not_registered_is_refused_and_creates_nothing(registry) -> None:
    with pytest.raises(RegistryError, match="not registered"):
        registry.store.update("box-0009", name="ghost")
    with pytest.raises(RegistryError, match="not registered"):
        registry.store.update("box-0009")
    assert registry.items() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"tz": "Mars/Olympus_Mons"},
        {"tz": None},
        {"name": ""},
        {"site": "x" * 201},
        {"power_limit_w": -1.0},
        {"daily_budget_kwh": float("nan")},
        {"tags": frozenset(f"t{n}" for n in range(33))},
        {"device_id": "box-0002"},
        {"colour": "red"},
    ],
    ids=["tz", "tz-unset", "empty-name", "long-site", "negative", "nan", "tags", "key", "unknown"],
)
def test_an_update_out_of_the_rules_is_refused_before_anything_is_written(registry, changes: dict) -> None:
    registry.store.put(KITCHEN)
    before = registry.items()
    with pytest.raises(RegistryError):
        registry.store.update("box-0001", **changes)
    assert registry.items() == before


def test_list_is_every_entry_by_id_and_filters_by_site_and_tag(registry) -> None:
    fleet(registry)
    assert [i.device_id for i in registry.store.list()] == ["box-0001", "box-0002", "box-0003"]
    assert [i.device_id for i in registry.store.list(site="paris-1")] == ["box-0001", "box-0002"]
    assert [i.device_id for i in registry.store.list(tag="plug")] == ["box-0001", "box-0003"]
    assert [i.device_id for i in registry.store.list(site="paris-1", tag="plug")] == ["box-0001"]
    assert registry.store.list(site="nowhere") == []
    assert devices_matching(registry.store, tag="plug") == ["box-0001", "box-0003"]
    assert devices_matching(registry.store) == ["box-0001", "box-0002", "box-0003"]


def test_list_reads_every_page_and_leaves_the_other_items_of_the_table_out(registry) -> None:
    # Tags make each entry about 2 KB, so 700 of them span more than one 1 MB page.
    tags = frozenset(f"tag-{n:02d}-" + "x" * 50 for n in range(32))
    ids = [f"box-{n:04d}" for n in range(700)]
    for device_id in ids:
        registry.store.put(DeviceInfo(device_id, tags=tags))
    registry.seed(encode_item({"device_id": "box-0001", "bucket": "h#2026-11-27T13", "energy_wh": 1.5, "samples": 3}))
    registry.seed(encode_item({"device_id": "live#00001", "bucket": "live", "box-0001": [1, None, 1.0, 0.5, 1, None]}))
    assert [i.device_id for i in registry.store.list()] == ids


def test_remove_says_whether_there_was_an_entry(registry) -> None:
    fleet(registry)
    assert registry.store.remove("box-0002") is True
    assert registry.store.remove("box-0002") is False
    assert registry.store.get("box-0002") is None
    assert [i.device_id for i in registry.store.list()] == ["box-0001", "box-0003"]


@pytest.mark.parametrize("device_id", ["", "registry#", "box 1", "x" * 129, "h#2026-11-27T13"])
def test_an_id_that_is_not_a_thing_name_is_refused_everywhere(registry, device_id: str) -> None:
    for call in (
        lambda: registry.store.get(device_id),
        lambda: registry.store.get_many([device_id]),
        lambda: registry.store.update(device_id, name="x"),
        lambda: registry.store.remove(device_id),
    ):
        with pytest.raises(RegistryError, match="not a device id"):
            call()
    assert registry.items() == []


@pytest.mark.parametrize("device_id", ["live", "bucket", "device_id", "h", "registry"])
def test_a_registry_entry_is_no_bucket_to_the_readers_of_a_scan(registry, device_id: str) -> None:
    """A device named ``live`` gives an item with the live items' bucket; readers leave it out."""
    registry.store.put(DeviceInfo(device_id, name="n", site="s", tags=frozenset({"t"}), power_limit_w=1.0))
    registry.seed(encode_item({"device_id": "box-0001", "bucket": "h#2026-11-27T13", "energy_wh": 1.5, "samples": 3}))
    assert list(logical_buckets(registry.items())) == [("box-0001", "h#2026-11-27T13"), ("box-0001", "d#2026-11-27")]


def _fields(info: DeviceInfo) -> dict:
    return {name: getattr(info, name) for name in DeviceInfo.__dataclass_fields__}
