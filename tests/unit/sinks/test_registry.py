"""A registry entry (``sinks.registry.DeviceInfo``): its rules, and its item read back as it was."""

from __future__ import annotations

import math
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readings.errors import RegistryError, WattstreamError
from sinks.dynamo import decode_item
from sinks.limits import item_size_bytes, refusals
from sinks.memory import MemoryTable
from sinks.registry import MAX_TAG_CHARS, MAX_TAGS, MAX_TEXT_CHARS, PARTITION, DeviceInfo, update_parts

EXAMPLES = settings(max_examples=200, deadline=None)
ZONES = sorted(zoneinfo.available_timezones())


def test_the_defaults_are_utc_and_nothing_else() -> None:
    info = DeviceInfo("box-0001")
    assert (info.tz, info.name, info.tags, info.power_limit_w) == ("UTC", None, frozenset(), None)
    assert decode_item(info.to_item()) == {"device_id": PARTITION, "bucket": "box-0001", "tz": "UTC"}


def test_tags_of_any_iterable_become_a_frozenset_and_integral_limits_floats() -> None:
    info = DeviceInfo("box-0001", tags=["b", "a", "b"], power_limit_w=3500, daily_budget_kwh=0)  # type: ignore[arg-type]
    assert info.tags == frozenset({"a", "b"}) and isinstance(info.tags, frozenset)
    assert type(info.power_limit_w) is float and info.power_limit_w == 3500.0
    assert type(info.daily_budget_kwh) is float
    assert info.to_item()["tags"] == {"SS": ["a", "b"]}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"device_id": "box#1"}, "not a device id"),
        ({"device_id": ""}, "not a device id"),
        ({"device_id": "x" * 129}, "not a device id"),
        ({"tz": "Mars/Olympus_Mons"}, "not a time zone"),
        ({"tz": "europe/paris"}, "not a time zone"),
        ({"tz": "../../etc/passwd"}, "not a time zone"),
        ({"tz": ""}, "not a time zone"),
        ({"tz": "posixrules"}, "not a time zone"),
        ({"tz": 1}, "IANA time zone name"),
        ({"name": ""}, "non-empty"),
        ({"name": "   "}, "non-empty"),
        ({"site": "x" * (MAX_TEXT_CHARS + 1)}, "at most 200"),
        ({"tariff": "peak\nhours"}, "control"),
        ({"name": "\ud800"}, "control"),
        ({"name": 5}, "non-empty string"),
        ({"tags": "kitchen"}, "set of strings"),
        ({"tags": {f"t{n}" for n in range(MAX_TAGS + 1)}}, "at most 32"),
        ({"tags": {""}}, "1 to 64"),
        ({"tags": {"x" * (MAX_TAG_CHARS + 1)}}, "1 to 64"),
        ({"tags": {"two words"}}, "no spaces"),
        ({"tags": {"a,b"}}, "commas"),
        ({"tags": {7}}, "1 to 64"),
        ({"power_limit_w": -1.0}, "not negative"),
        ({"power_limit_w": -0.000001}, "not negative"),
        ({"daily_budget_kwh": math.nan}, "finite"),
        ({"daily_budget_kwh": math.inf}, "finite"),
        ({"power_limit_w": 1e10}, "0 or from"),
        ({"power_limit_w": 1e-200}, "0 or from"),
        ({"power_limit_w": True}, "must be a number"),
        ({"power_limit_w": "3500"}, "must be a number"),
    ],
)
def test_a_hostile_value_is_refused_with_a_clear_error(fields: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as caught:
        DeviceInfo(**{"device_id": "box-0001", **fields})
    assert isinstance(caught.value, WattstreamError)
    assert len(str(caught.value)) <= 200


def test_the_limits_themselves_are_taken() -> None:
    info = DeviceInfo(
        "x" * 128,
        name="n" * MAX_TEXT_CHARS,
        tags={f"{n:02d}" + "t" * (MAX_TAG_CHARS - 2) for n in range(MAX_TAGS)},
        power_limit_w=0.0,
        daily_budget_kwh=1e9,
    )
    assert len(info.tags) == MAX_TAGS
    assert refusals(info.to_item(), partition_key="device_id", sort_key="bucket") == []


def test_an_item_not_of_the_registry_is_no_entry() -> None:
    with pytest.raises(RegistryError, match="not a registry item"):
        DeviceInfo.from_item({"device_id": "box-0001", "bucket": "h#2026-11-27T13"})


def test_an_update_sets_what_is_given_and_removes_what_is_none() -> None:
    set_, remove = update_parts("box-0001", {"name": "Plug", "site": None, "tags": frozenset(), "power_limit_w": 5})
    assert set_ == {"name": {"S": "Plug"}, "power_limit_w": {"N": "5.0"}}
    assert sorted(remove) == ["site", "tags"]


def test_a_typical_item_bills_one_write_unit_and_the_largest_stays_far_below_the_item_limit() -> None:
    typical = DeviceInfo(
        "box-0001", "Europe/Paris", "Kitchen plug", "paris-1", "edf-tempo", frozenset({"plug", "kitchen"}), 3500.0, 12.5
    )
    wide = "\U0001f600"
    largest = DeviceInfo(
        "b" * 128,
        max(ZONES, key=len),
        wide * MAX_TEXT_CHARS,
        wide * MAX_TEXT_CHARS,
        wide * MAX_TEXT_CHARS,
        frozenset(f"{n:02d}" + wide * (MAX_TAG_CHARS - 2) for n in range(MAX_TAGS)),
        1.2345678901234567e8,
        1.2345678901234567e8,
    )
    assert item_size_bytes(typical.to_item()) <= 150
    assert item_size_bytes(largest.to_item()) <= 11 * 1024


# -- the round trip ---------------------------------------------------------------------------

printable = st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"])
texts = st.text(printable, min_size=1, max_size=MAX_TEXT_CHARS).filter(lambda t: t.strip() and t.isprintable())
tags = st.text(printable, min_size=1, max_size=MAX_TAG_CHARS).filter(
    lambda t: t.isprintable() and not any(c.isspace() or c == "," for c in t)
)
limits = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=1e9),
    st.integers(min_value=0, max_value=10**9),
)
infos = st.builds(
    DeviceInfo,
    device_id=st.from_regex(r"\A[A-Za-z0-9:_-]{1,128}\Z"),
    tz=st.sampled_from(ZONES),
    name=st.none() | texts,
    site=st.none() | texts,
    tariff=st.none() | texts,
    tags=st.frozensets(tags, max_size=MAX_TAGS),
    power_limit_w=limits,
    daily_budget_kwh=limits,
)


@EXAMPLES
@given(infos)
def test_an_entry_reads_back_from_its_item_as_it_was(info: DeviceInfo) -> None:
    table = MemoryTable()
    table.put(info.to_item())  # refuses what DynamoDB would refuse
    (stored,) = table.items()
    assert DeviceInfo.from_item(stored) == info
    for name in ("power_limit_w", "daily_budget_kwh"):
        value = getattr(DeviceInfo.from_item(stored), name)
        assert value is None or (type(value) is float and value.hex() == getattr(info, name).hex())


@EXAMPLES
@given(infos)
def test_an_entry_reads_back_when_the_store_trims_an_integral_number(info: DeviceInfo) -> None:
    """DynamoDB gives ``3500.0`` back as ``3500``: the entry still holds a float."""
    item = info.to_item()
    for name in ("power_limit_w", "daily_budget_kwh"):
        if name in item and float(item[name]["N"]).is_integer():
            item[name] = {"N": str(int(float(item[name]["N"])))}
    back = DeviceInfo.from_item(decode_item(item))
    assert back == info
    assert all(
        getattr(back, n) is None or type(getattr(back, n)) is float for n in ("power_limit_w", "daily_budget_kwh")
    )


def test_a_string_set_follows_dynamodb_s_rules() -> None:
    ok = {"device_id": {"S": "registry#"}, "bucket": {"S": "b"}}
    assert refusals({**ok, "tags": {"SS": ["a", "b"]}}, partition_key="device_id", sort_key="bucket") == []
    for bad in ([], ["a", "a"], ["\ud800"], [1]):
        assert refusals({**ok, "tags": {"SS": bad}}, partition_key="device_id", sort_key="bucket"), bad
    assert item_size_bytes({"tags": {"SS": ["ab", "\u00e9"]}}) == len("tags") + 2 + 2
