"""The real-time view: many devices' current values packed into one item.

Writing one item per device per flush would cost a write unit per device every minute. Instead
the devices are spread over ``groups`` items by the MD5 of their id, the very hash Kinesis
routes a partition key by: the devices of one group sit in one shard's hash range (only a
group on a shard boundary is shared by two shards), so a flush writes each of its groups once,
and one write carries a hundred devices. A reader finds a device's item from its id alone.

An item (``device_id`` = ``live#<group>``, ``bucket`` = ``live``) holds, per device, one list
attribute named after it (``device_attr``: a device named like a key attribute, ``bucket`` or
``device_id``, is stored as ``d#<name>``; no thing name holds a ``#``)::

    [ts_ms, power_w, register_wh, hour_energy_wh, hour_samples, hour_power_max_w,
     (hour_export_wh, (hour_seq_gaps, hour_missing, hour_silent_ms, (hour_quarters)))]

(the newest reading's time on the device's time base, its power and import register, and the
figures of the open hour that time falls in; energy rounded to the mWh, far below what a meter
resolves; the open hour's export and completeness only once they are not zero, or when the
quarters follow: the open hour's four quarters, each as ``batcher.buckets.Quarter.to_list``). Each shard's
writes are conditional on its own marker (``v#<shard>``: the last batch it wrote), so a replay
rewrites the same values and a zombie's older batch changes nothing; a child shard removes its
ancestors' markers, so they never pile up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from batcher.buckets import Quarter
from batcher.ledger import Live
from readings.errors import ConditionFailedError, FencedError
from sinks.dynamo import encode_item, with_retries

LIVE_BUCKET = "live"
_HASH_SPACE = 2**128


def hash_key(device_id: str) -> int:
    """The 128-bit hash Kinesis gives a partition key (MD5, as an unsigned integer)."""
    return int.from_bytes(hashlib.md5(device_id.encode("utf-8"), usedforsecurity=False).digest(), "big")


def group_of(device_id: str, groups: int) -> int:
    return hash_key(device_id) * groups // _HASH_SPACE


def live_key(group: int) -> dict[str, str]:
    return {"device_id": f"live#{group:05d}", "bucket": LIVE_BUCKET}


def entry(live: Live) -> list[Any]:
    """The packed values of one device (see the module docstring)."""
    values: list[Any] = [
        live.ts_ms,
        live.power_w,
        round(live.register_wh, 3),
        round(live.hour_energy_wh, 3),
        live.hour_samples,
        live.hour_power_max_w,
    ]
    gaps = [live.hour_seq_gaps, live.hour_missing, live.hour_silent_ms]
    if round(live.hour_export_wh, 3) or any(gaps) or live.hour_quarters:
        values.append(round(live.hour_export_wh, 3))
    if any(gaps) or live.hour_quarters:
        values.extend(gaps)
    if live.hour_quarters:
        values.append([q.to_list() for q in live.hour_quarters])
    return values


def parse_entry(values: list[Any]) -> dict[str, Any]:
    ts_ms, power_w, register_wh, hour_wh, hour_samples, hour_power_max_w = values[:6]
    return {
        "ts_ms": int(ts_ms),
        "power_w": power_w,
        "register_wh": register_wh,
        "hour_energy_wh": hour_wh,
        "hour_samples": int(hour_samples),
        "hour_power_max_w": hour_power_max_w,
        "hour_export_wh": values[6] if len(values) > 6 else 0.0,
        "hour_seq_gaps": int(values[7]) if len(values) > 9 else 0,
        "hour_missing": int(values[8]) if len(values) > 9 else 0,
        "hour_silent_ms": int(values[9]) if len(values) > 9 else 0,
        "hour_quarters": [Quarter.from_list(list(q)) for q in values[10]] if len(values) > 10 else [],
    }


def _wire_list(values: list[Any]) -> dict[str, Any]:
    # DynamoDB's wire form of the entry, built directly: a hundred entries per update make the
    # generic serializer a visible share of a flush's CPU. Numbers as ``repr``, the shortest
    # text that reads back as the same float (as ``sinks.dynamo`` writes them).
    return {
        "L": [{"NULL": True} if v is None else _wire_list(v) if isinstance(v, list) else {"N": repr(v)} for v in values]
    }


def marker_attr(shard_id: str) -> str:
    return f"v#{shard_id}"


_KEY_ATTRS = frozenset({"device_id", "bucket"})


def device_attr(device_id: str) -> str:
    """The attribute holding a device's entry in its group item (never a key attribute)."""
    return f"d#{device_id}" if device_id in _KEY_ATTRS else device_id


def attr_device(name: str) -> str | None:
    """The device an attribute of a group item holds, or None for the keys and the markers."""
    if name in _KEY_ATTRS or name.startswith("v#"):
        return None
    return name[2:] if name.startswith("d#") else name


class LiveView:
    def __init__(self, client: Any, table: str, groups: int) -> None:
        self._client = client
        self._table = table
        self.groups = groups

    def write(
        self,
        shard_id: str,
        marker: str,
        live: Mapping[str, Live],
        *,
        ancestors: Iterable[str] = (),
    ) -> tuple[int, float]:
        """Write every device's values, one update per group: (items written, capacity units)."""
        by_group: dict[int, list[tuple[str, Live]]] = {}
        for device_id, values in live.items():
            by_group.setdefault(group_of(device_id, self.groups), []).append((device_id, values))
        drop = [marker_attr(a) for a in ancestors]
        written, units = 0, 0.0
        for group, members in sorted(by_group.items()):
            units += self._update(group, shard_id, marker, members, drop)
            written += 1
        return written, units

    def _update(
        self, group: int, shard_id: str, marker: str, members: list[tuple[str, Live]], drop: list[str]
    ) -> float:
        names = {"#v": marker_attr(shard_id)}
        sets = ["#v = :v"]
        values: dict[str, Any] = {":v": {"S": marker}}
        for i, (device_id, live) in enumerate(sorted(members)):
            names[f"#d{i}"] = device_attr(device_id)
            sets.append(f"#d{i} = :d{i}")
            values[f":d{i}"] = _wire_list(entry(live))
        expression = "SET " + ", ".join(sets)
        if drop:
            names.update({f"#r{i}": name for i, name in enumerate(drop)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(drop)))

        def call() -> Any:
            return self._client.update_item(
                TableName=self._table,
                Key=encode_item(live_key(group)),
                UpdateExpression=expression,
                ConditionExpression="attribute_not_exists(#v) OR #v <= :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnConsumedCapacity="TOTAL",
            )

        try:
            response = with_retries(call, what=f"UpdateItem live#{group}")
        except ConditionFailedError:
            raise FencedError(f"live#{group}: a later batch of {shard_id} was written") from None
        return float(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
