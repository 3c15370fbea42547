"""The device registry: what the fleet's owner says about each box, one small item per device.

The items live in the aggregates table, all in one partition of their own::

    device_id = "registry#"        bucket = <device id>
    tz                S   IANA time zone name (always stored; "UTC" unless told)
    name, site,       S   free text, 1 to 200 characters; absent when unset
    tariff
    tags              SS  up to 32 short strings; absent when there are none
    power_limit_w,    N   alert thresholds other parts read; absent when unset
    daily_budget_kwh

A thing name never holds a ``#``, so ``registry#`` never meets a device's own items
(``device_id`` = the thing) nor the live view's (``live#NNNNN``); and a device id as the sort key
never looks like an hour or a day (``h#...``, ``d#...``). A device named ``live`` gives the
registry item ``bucket = "live"``, which is why readers of a scan tell live items by their
``live#`` partition, not by the bucket alone (``sinks.read.logical_buckets``).

Costs: an item is about 40 bytes with the defaults and 140 with every field set to a typical
value (at most about 11 KB, every limit reached in four-byte characters), so a put, an update
or a removal bills one write unit. ``get`` is one GetItem, ``get_many`` one BatchGetItem per 100
devices, and ``list`` one paginated Query on the ``registry#`` partition, never a Scan: a Query
bills the sum of the items it returns per started 4 KB, so a fleet of 10,000 boxes lists in two
1 MB pages for about 350 read units. Every read is consistent: a device just added is listed.

Values are checked when a ``DeviceInfo`` is made, so nothing out of these rules reaches the
table; a violation raises ``RegistryError`` naming the field.
"""

from __future__ import annotations

import builtins
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from readings.errors import ConditionFailedError, RegistryError
from readings.models import is_thing_name
from sinks.dynamo import batch_get, decode_item, encode_item, query_items, with_retries

if TYPE_CHECKING:
    from sinks.ports import RegistryPort

PARTITION = "registry#"
DEFAULT_TZ = "UTC"
MAX_TEXT_CHARS = 200
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_LIMIT = 1e9
"""Above any box: a gigawatt, a terawatt-hour a day."""
MIN_NONZERO_LIMIT = 1e-6
"""A micro-unit; below it DynamoDB's number range ends long before a meter's resolution does."""

TEXT_FIELDS = ("name", "site", "tariff")
LIMIT_FIELDS = ("power_limit_w", "daily_budget_kwh")
CHANGEABLE = ("tz", *TEXT_FIELDS, "tags", *LIMIT_FIELDS)
"""The fields ``update`` may change (every one but the device id)."""


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_tz(tz: object) -> str:
    """``tz`` if zoneinfo knows it as an IANA name, else ``RegistryError``."""
    if not isinstance(tz, str):
        raise RegistryError(f"tz must be an IANA time zone name, got {tz!r}")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        known = False
    else:
        # ZoneInfo also opens files of the database that are no zone names ("posixrules").
        known = tz in _known_zones()
    if not known:
        raise RegistryError(f"tz {tz[:60]!r} is not a time zone zoneinfo knows (e.g. Europe/Paris, UTC)")
    return tz


def check_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"{name} must be a non-empty string, got {value!r}"[:200])
    if len(value) > MAX_TEXT_CHARS:
        raise RegistryError(f"{name} is {len(value)} characters long (at most {MAX_TEXT_CHARS})")
    if not value.isprintable():
        raise RegistryError(f"{name} holds a control or unprintable character: {value[:60]!r}")
    return value


def check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG_CHARS:
        raise RegistryError(f"a tag must be a string of 1 to {MAX_TAG_CHARS} characters, got {tag!r}"[:200])
    if not tag.isprintable() or any(c.isspace() or c == "," for c in tag):
        raise RegistryError(f"a tag holds no spaces, commas or control characters: {tag!r}")
    return tag


def check_tags(tags: object) -> frozenset[str]:
    # A string is iterable too: "kitchen" must not become seven one-letter tags.
    if isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        raise RegistryError(f"tags must be a set of strings, got {tags!r}"[:200])
    found = frozenset(check_tag(tag) for tag in tags)
    if len(found) > MAX_TAGS:
        raise RegistryError(f"{len(found)} tags (at most {MAX_TAGS})")
    return found


def check_limit(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RegistryError(f"{name} must be a number, got {value!r}"[:200])
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise RegistryError(f"{name} must be a finite number, not negative: got {value!r}")
    if number > MAX_LIMIT or 0 < number < MIN_NONZERO_LIMIT:
        raise RegistryError(f"{name} must be 0 or from {MIN_NONZERO_LIMIT:g} to {MAX_LIMIT:g}, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device's registry entry. Made only from valid values (else ``RegistryError``); tags
    given as any iterable of strings become a frozenset, integral limits floats."""

    device_id: str
    tz: str = DEFAULT_TZ
    name: str | None = None
    site: str | None = None
    tariff: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    power_limit_w: float | None = None
    daily_budget_kwh: float | None = None

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        check_tz(self.tz)
        for name in TEXT_FIELDS:
            check_text(name, getattr(self, name))
        object.__setattr__(self, "tags", check_tags(self.tags))
        for name in LIMIT_FIELDS:
            object.__setattr__(self, name, check_limit(name, getattr(self, name)))

    def to_item(self) -> dict[str, Any]:
        """The item in DynamoDB's wire form; unset fields are absent, tags a sorted string set."""
        plain = {
            **registry_key(self.device_id),
            "tz": self.tz,
            **{name: getattr(self, name) for name in (*TEXT_FIELDS, *LIMIT_FIELDS)},
        }
        item = encode_item(plain)
        if self.tags:
            item["tags"] = {"SS": sorted(self.tags)}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DeviceInfo:
        """The entry of a decoded item (``decode_item``); attributes it does not know are ignored."""
        if item.get("device_id") != PARTITION:
            raise RegistryError(f"not a registry item: device_id {item.get('device_id')!r}"[:200])
        fields = {name: item.get(name) for name in (*TEXT_FIELDS, *LIMIT_FIELDS)}
        return cls(str(item["bucket"]), item.get("tz", DEFAULT_TZ), tags=frozenset(item.get("tags", ())), **fields)


def registry_key(device_id: str) -> dict[str, str]:
    return {"device_id": PARTITION, "bucket": device_id}


def check_device_id(device_id: object) -> str:
    if not is_thing_name(device_id):
        raise RegistryError(f"{device_id!r} is not a device id (a thing name: A-Z a-z 0-9 : _ -, 1 to 128)"[:200])
    return str(device_id)


def check_changes(changes: Mapping[str, Any]) -> None:
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise RegistryError(f"cannot change {', '.join(unknown)} (fields: {', '.join(CHANGEABLE)})")
    if "tz" in changes and changes["tz"] is None:
        raise RegistryError("tz cannot be unset (UTC is a time zone like any other)")


def update_parts(device_id: str, changes: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The attributes to set (wire form) and to remove for ``changes``, each value checked.

    None unsets a field (an empty set of tags as well); the checks are the ones of a new entry,
    and no rule spans two fields, so any stored entry with these changes is a valid one.
    """
    check_changes(changes)
    checked = DeviceInfo(device_id, **{k: v for k, v in changes.items() if v is not None}).to_item()
    set_ = {name: checked[name] for name in changes if name in checked}
    remove = [name for name in changes if name not in checked]
    return set_, remove


def matches(info: DeviceInfo, site: str | None = None, tag: str | None = None) -> bool:
    """The entry is at ``site`` (when given) and carries ``tag`` (when given)."""
    return (site is None or info.site == site) and (tag is None or tag in info.tags)


def devices_matching(store: RegistryPort, site: str | None = None, tag: str | None = None) -> builtins.list[str]:
    """The ids of the registered devices at ``site`` and with ``tag`` (each when given), ascending."""
    return [info.device_id for info in store.list(site=site, tag=tag)]


class RegistryStore:
    """The registry in the aggregates table (see the module docstring for the layout)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, device_id: str) -> DeviceInfo | None:
        """The device's entry (one consistent GetItem); None when it is not registered."""
        key = encode_item(registry_key(check_device_id(device_id)))
        response = with_retries(
            lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True),
            what="GetItem registry",
        )
        return DeviceInfo.from_item(decode_item(response["Item"])) if "Item" in response else None

    def get_many(self, device_ids: Iterable[str]) -> dict[str, DeviceInfo]:
        """The entries of those devices that are registered, by id (BatchGetItem, 100 a request)."""
        wanted = sorted({check_device_id(d) for d in device_ids})
        found = batch_get(self._client, self._table, [registry_key(d) for d in wanted])
        return {bucket: DeviceInfo.from_item(item) for (_, bucket), item in sorted(found.items())}

    def put(self, info: DeviceInfo, *, overwrite: bool = True) -> None:
        """Store the entry whole; with ``overwrite=False``, ``RegistryError`` if the device is registered."""
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": info.to_item()}
        if not overwrite:
            kwargs["ConditionExpression"] = "attribute_not_exists(#b)"
            kwargs["ExpressionAttributeNames"] = {"#b": "bucket"}
        try:
            with_retries(lambda: self._client.put_item(**kwargs), what="PutItem registry")
        except ConditionFailedError:
            raise RegistryError(f"{info.device_id} is registered already; `set` changes it") from None

    def update(self, device_id: str, /, **changes: Any) -> DeviceInfo:
        """Change some fields (None unsets one) of a registered device; the entry after the change.

        One UpdateItem on condition that the device is registered, else ``RegistryError``.
        """
        set_, remove = update_parts(check_device_id(device_id), changes)
        if not set_ and not remove:
            info = self.get(device_id)
            if info is None:
                raise RegistryError(f"{device_id} is not registered")
            return info
        names = {
            "#b": "bucket",
            **{f"#s{i}": n for i, n in enumerate(set_)},
            **{f"#r{i}": n for i, n in enumerate(remove)},
        }
        values = {f":s{i}": v for i, v in enumerate(set_.values())}
        expression = ""
        if set_:
            expression += "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_)))
        if remove:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": encode_item(registry_key(device_id)),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": "attribute_exists(#b)",
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            response = with_retries(lambda: self._client.update_item(**kwargs), what="UpdateItem registry")
        except ConditionFailedError:
            raise RegistryError(f"{device_id} is not registered") from None
        return DeviceInfo.from_item(decode_item(response["Attributes"]))

    def remove(self, device_id: str) -> bool:
        """Delete the device's entry; whether there was one."""
        response = with_retries(
            lambda: self._client.delete_item(
                TableName=self._table, Key=encode_item(registry_key(check_device_id(device_id))), ReturnValues="ALL_OLD"
            ),
            what="DeleteItem registry",
        )
        return "Attributes" in response

    def list(self, site: str | None = None, tag: str | None = None) -> builtins.list[DeviceInfo]:
        """Every registered device at ``site`` and with ``tag`` (each when given), by id.

        One consistent Query of the registry partition, page by page; the filter runs here,
        as a FilterExpression would bill the same read units.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "device_id = :p",
            "ExpressionAttributeValues": {":p": {"S": PARTITION}},
            "ConsistentRead": True,
        }
        found = (DeviceInfo.from_item(item) for item in query_items(self._client, what="Query registry", **kwargs))
        return [info for info in found if matches(info, site, tag)]
