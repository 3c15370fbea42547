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
     (hour_export_wh, (hour_seq_gaps, hour_missing, hour_silent_ms)), ([closed quarters], ([export shares]))]

(the newest reading's time on the device's time base, its power and import register, and the
figures of the open hour that time falls in; energy rounded to the mWh, far below what a meter
resolves; the open hour's export and completeness only once they are not zero). The open
hour's quarters before the current one follow as one list, a number each: its share of the
hour's energy in thousandths times 10,000 plus its samples (``None``: no data); with export, a
second list of export shares. The current quarter is the rest of the hour, so the quarters
always add up to the hour exactly. Nothing is added while the hour is in its first quarter,
which keeps the entry, written every flush, small: a hundred devices' entries share one item
billed per started KB. The quarters are exact once the hour is closed (its item holds them in
full); the open hour's are rounded to a thousandth of the hour, and its peak power belongs to
the current quarter. Each shard's
writes are conditional on its own marker (``v#<shard>``: the last batch it wrote), so a replay
rewrites the same values and a zombie's older batch changes nothing; a child shard removes its
ancestors' markers, so they never pile up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from batcher.buckets import HOUR_MS, QUARTER_MS, Quarter
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


SHARE_STEPS = 1000
"""A closed quarter of the open hour is kept as its share of the hour, in thousandths."""
_SAMPLES_BASE = 10_000


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
    if round(live.hour_export_wh, 3) or any(gaps):
        values.append(round(live.hour_export_wh, 3))
    if any(gaps):
        values.extend(gaps)
    current = live.ts_ms % HOUR_MS // QUARTER_MS
    if live.hour_quarters and current:
        done = live.hour_quarters[:current]
        values.append([_packed(q, live.hour_energy_wh) for q in done])
        if round(live.hour_export_wh, 3):
            values.append([_share(q.export_wh, live.hour_export_wh) for q in done])
    return values


def _share(part: float, whole: float) -> int:
    return round(SHARE_STEPS * part / whole) if whole > 0 else 0


def _packed(q: Quarter, hour_wh: float) -> int | None:
    # One number per quarter: its share of the hour's energy and its samples (None: no data).
    if not q.samples and not q.energy_wh:
        return None
    return _share(q.energy_wh, hour_wh) * _SAMPLES_BASE + min(q.samples, _SAMPLES_BASE - 1)


def parse_entry(values: list[Any]) -> dict[str, Any]:
    numbers = [v for v in values if not isinstance(v, list)]
    shares = [v for v in values if isinstance(v, list)]
    ts_ms, power_w, register_wh, hour_wh, hour_samples, hour_power_max_w = numbers[:6]
    out = {
        "ts_ms": int(ts_ms),
        "power_w": power_w,
        "register_wh": register_wh,
        "hour_energy_wh": hour_wh,
        "hour_samples": int(hour_samples),
        "hour_power_max_w": hour_power_max_w,
        "hour_export_wh": numbers[6] if len(numbers) > 6 else 0.0,
        "hour_seq_gaps": int(numbers[7]) if len(numbers) > 9 else 0,
        "hour_missing": int(numbers[8]) if len(numbers) > 9 else 0,
        "hour_silent_ms": int(numbers[9]) if len(numbers) > 9 else 0,
    }
    out["hour_quarters"] = _quarters(out, shares)
    return out


def _quarters(values: dict[str, Any], shares: list[list[Any]]) -> list[Quarter]:
    """The open hour's four quarters: the closed ones from their shares, the current one the rest."""
    current = values["ts_ms"] % HOUR_MS // QUARTER_MS
    hour_wh, export_wh = float(values["hour_energy_wh"]), float(values["hour_export_wh"])
    packed = shares[0] if shares else [None] * current
    exported = shares[1] if len(shares) > 1 else [0] * len(packed)
    silent = QUARTER_MS if values["hour_silent_ms"] else 0
    quarters = []
    for value, export_share in zip(packed, exported, strict=False):
        if value is None:
            quarters.append(Quarter())
            continue
        share, samples = divmod(int(value), _SAMPLES_BASE)
        quarters.append(
            Quarter(hour_wh * share / SHARE_STEPS, samples, None, export_wh * int(export_share) / SHARE_STEPS, silent)
        )
    quarters.append(
        Quarter(
            hour_wh - sum(q.energy_wh for q in quarters),
            max(0, values["hour_samples"] - sum(q.samples for q in quarters)),
            values["hour_power_max_w"],
            export_wh - sum(q.export_wh for q in quarters),
            silent,
        )
    )
    return quarters + [Quarter() for _ in range(4 - len(quarters))]


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
