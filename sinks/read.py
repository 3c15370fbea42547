"""Reading energy back without knowing the item layout: one function per question.

Closed hours and days are items of their own; a device's open hour lives in the live view
(``sinks.live``) and its open day is the sum of that day's hours. ``read_intervals`` puts them
together, so a reader gets every UTC hour or day with data whether it is closed or not.
``read_series`` gives every local-time interval of a range (15 minutes to a month, in any zone),
summed from the quarters the hour items carry (``sinks.intervals``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from batcher.buckets import QUARTER_MS, BucketAggregate, Quarter, day_key, hour_key
from batcher.ledger import bucket_start_ms
from sinks.dynamo import batch_get, decode_item, query_items, with_retries
from sinks.intervals import slots, sum_quarters
from sinks.live import LIVE_BUCKET, attr_device, device_attr, group_of, live_key, parse_entry

Every = Literal["1h", "1d"]
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
LIVE_PARTITION_PREFIX = "live#"
"""The live items' ``device_id`` starts so (``sinks.live.live_key``); no thing name holds a ``#``."""
_FIGURES = ("energy_wh", "samples", "power_max_w", "export_wh", "seq_gaps", "missing", "silent_ms")


@dataclass(frozen=True, slots=True)
class Interval:
    device_id: str
    start_ms: int
    duration_s: int
    energy_wh: float
    samples: int
    power_max_w: float | None = None
    closed: bool = True
    """False while the interval can still change (the device's open hour or day)."""
    export_wh: float = 0.0
    """Energy on the export register (OBIS 2.8.0); ``energy_wh`` is the import register's."""
    seq_gaps: int = 0
    missing: int = 0
    silent_ms: int = 0
    """Completeness (``batcher.completeness``)."""
    local_start: str = ""
    """The start in the interval's zone, RFC 3339 with its offset (``read_series`` only)."""
    tz: str = "UTC"
    quality: str = "A"
    """``A`` actual, ``E`` estimated, ``N`` no data (``sinks.intervals``)."""

    @property
    def net_wh(self) -> float:
        """Import minus export."""
        return self.energy_wh - self.export_wh

    @property
    def power_mean_w(self) -> float:
        """The mean import power over the interval: its energy over its length."""
        return self.energy_wh * 3600 / self.duration_s if self.duration_s else 0.0


def logical_buckets(items: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(device_id, bucket) -> figures, for every hour and day with data, closed or open.

    ``items`` are decoded items of the aggregates table: bucket items and live items (a scan,
    or a device's bucket items plus its live item). Any other item is left out: a device
    registry entry (``sinks.registry``) has a device id as its bucket, and the one of a device
    named ``live`` has the live items' bucket, so a live item is told by its partition too.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        if item.get("bucket") == LIVE_BUCKET and str(item.get("device_id", "")).startswith(LIVE_PARTITION_PREFIX):
            for name, values in item.items():
                device_id = attr_device(name)
                if device_id is None:
                    continue
                live = parse_entry(values)
                hour = hour_key(live["ts_ms"])
                if (device_id, hour) not in out and live["hour_samples"]:
                    out[(device_id, hour)] = {
                        "energy_wh": live["hour_energy_wh"],
                        "samples": live["hour_samples"],
                        "power_max_w": live["hour_power_max_w"],
                        "export_wh": live["hour_export_wh"],
                        "seq_gaps": live["hour_seq_gaps"],
                        "missing": live["hour_missing"],
                        "silent_ms": live["hour_silent_ms"],
                        "closed": False,
                    }
        elif str(item.get("bucket", "")).startswith(("h#", "d#")):
            figures = {name: item.get(name) for name in _FIGURES}
            out[(item["device_id"], item["bucket"])] = {**figures, "closed": True}
    # A day not closed yet is the sum of its hours (they carry the very same pieces).
    open_days: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"energy_wh": 0.0, "samples": 0, "power_max_w": None, "export_wh": 0.0, "closed": False}
    )
    for (device_id, bucket), figures in list(out.items()):
        if not bucket.startswith("h#"):
            continue
        day = (device_id, day_key(bucket_start_ms(bucket)))
        if day in out:
            continue
        total = open_days[day]
        total["energy_wh"] += float(figures["energy_wh"] or 0.0)
        total["samples"] += int(figures["samples"] or 0)
        for name in ("export_wh", "seq_gaps", "missing", "silent_ms"):
            total[name] = total.get(name, 0) + (figures.get(name) or 0)
        if figures["power_max_w"] is not None:
            total["power_max_w"] = max(figures["power_max_w"], total["power_max_w"] or figures["power_max_w"])
    out.update(open_days)
    return out


def read_intervals(
    client: Any, table: str, device_id: str, start_ms: int, end_ms: int, every: Every, *, live_groups: int
) -> list[Interval]:
    """The device's intervals starting in [start_ms, end_ms), in time order; no-data ones omitted."""
    first_hour = start_ms - start_ms % (DAY_MS if every == "1d" else HOUR_MS)
    items = bucket_range(client, table, device_id, hour_key(first_hour), hour_key(end_ms + DAY_MS))
    if every == "1d":
        items += bucket_range(client, table, device_id, day_key(first_hour), day_key(end_ms))
    live = live_values(client, table, device_id, live_groups=live_groups)
    if live is not None:
        items.append(live)
    prefix = "h#" if every == "1h" else "d#"
    duration_s = 3600 if every == "1h" else 86400
    out = []
    for (device, bucket), figures in sorted(logical_buckets(items).items(), key=lambda kv: bucket_start_ms(kv[0][1])):
        begin = bucket_start_ms(bucket)
        if device != device_id or not bucket.startswith(prefix) or not start_ms <= begin < end_ms:
            continue
        if not figures["samples"] and not figures["energy_wh"] and not figures.get("export_wh"):
            continue
        out.append(
            Interval(
                device,
                begin,
                duration_s,
                float(figures["energy_wh"] or 0.0),
                int(figures["samples"] or 0),
                figures["power_max_w"],
                bool(figures["closed"]),
                float(figures.get("export_wh") or 0.0),
                int(figures.get("seq_gaps") or 0),
                int(figures.get("missing") or 0),
                int(figures.get("silent_ms") or 0),
            )
        )
    return out


def read_series(
    client: Any, table: str, device_id: str, start_ms: int, end_ms: int, every: str, tz: str, *, live_groups: int
) -> list[Interval]:
    """Every local interval of ``every`` in ``tz`` overlapping [start_ms, end_ms), in time order.

    Intervals without data are included (quality ``N``, no energy), so a chart shows a gap as a
    gap and an export has every interval. One Query over the range's hour items and one GetItem
    of the device's live entry (its open hour).
    """
    wanted = slots(start_ms, end_ms, every, tz)
    if not wanted:
        return []
    quarters, newest_ms = read_quarters(
        client, table, device_id, wanted[0].start_ms, wanted[-1].end_ms, live_groups=live_groups
    )
    open_hour = None if newest_ms is None else newest_ms - newest_ms % HOUR_MS
    out = []
    for slot in wanted:
        figures = sum_quarters(quarters, slot, data_until_ms=newest_ms)
        out.append(
            Interval(
                device_id,
                slot.start_ms,
                (slot.end_ms - slot.start_ms) // 1000,
                figures.energy_wh,
                figures.samples,
                figures.power_max_w,
                closed=open_hour is None or slot.end_ms <= open_hour,
                export_wh=figures.export_wh,
                silent_ms=figures.silent_ms,
                local_start=slot.local_start,
                tz=tz,
                quality=figures.quality,
            )
        )
    return out


def read_quarters(
    client: Any, table: str, device_id: str, start_ms: int, end_ms: int, *, live_groups: int
) -> tuple[dict[int, Quarter], int | None]:
    """The device's quarters in [start_ms, end_ms) by start, and its newest reading's time (None
    when the live view does not hold it).

    An hour stored before quarters were kept is spread evenly over its four quarters, which are
    then estimates (their silence is the whole quarter, so their quality is ``E``).
    """
    first_hour = start_ms - start_ms % HOUR_MS
    items = bucket_range(client, table, device_id, hour_key(first_hour), hour_key(max(first_hour, end_ms - 1)))
    hours: dict[int, BucketAggregate] = {
        bucket_start_ms(item["bucket"]): BucketAggregate.from_dict(item) for item in items
    }
    newest_ms: int | None = None
    live = live_values(client, table, device_id, live_groups=live_groups)
    if live is not None:
        values = parse_entry(live[device_attr(device_id)])
        newest_ms = values["ts_ms"]
        hour_ms = newest_ms - newest_ms % HOUR_MS
        if hour_ms not in hours and first_hour <= hour_ms < end_ms and values["hour_samples"]:
            hours[hour_ms] = BucketAggregate(
                energy_wh=values["hour_energy_wh"],
                samples=values["hour_samples"],
                power_max_w=values["hour_power_max_w"],
                export_wh=values["hour_export_wh"],
                quarters=values["hour_quarters"] or None,
            )
    out: dict[int, Quarter] = {}
    for hour_ms, agg in hours.items():
        for index, q in enumerate(agg.quarters or _spread(agg)):
            start = hour_ms + index * QUARTER_MS
            if start_ms <= start < end_ms:
                out[start] = q
    return out, newest_ms


def _spread(agg: BucketAggregate) -> list[Quarter]:
    samples = [agg.samples // 4 + (1 if i < agg.samples % 4 else 0) for i in range(4)]
    return [Quarter(agg.energy_wh / 4, n, agg.power_max_w, agg.export_wh / 4, QUARTER_MS) for n in samples]


def live_values(client: Any, table: str, device_id: str, *, live_groups: int) -> dict[str, Any] | None:
    """The device's part of its live item (one GetItem), as a decoded item; None if it has none."""
    response = with_retries(
        lambda: client.get_item(
            TableName=table,
            Key={k: {"S": v} for k, v in live_key(group_of(device_id, live_groups)).items()},
            ConsistentRead=True,
        ),
        what="GetItem live",
    )
    if "Item" not in response:
        return None
    whole = decode_item(response["Item"])
    name = device_attr(device_id)
    if name not in whole:
        return None
    return {"device_id": whole["device_id"], "bucket": LIVE_BUCKET, name: whole[name]}


def live_devices(client: Any, table: str, *, live_groups: int) -> dict[str, dict[str, Any]]:
    """Every device of the live view and its live values (``parse_entry``): one BatchGetItem per 100 groups."""
    keys = [live_key(group) for group in range(live_groups)]
    out: dict[str, dict[str, Any]] = {}
    for item in batch_get(client, table, keys).values():
        for name, values in item.items():
            device_id = attr_device(name)
            if device_id is not None:
                out[device_id] = parse_entry(values)
    return dict(sorted(out.items()))


def bucket_range(client: Any, table: str, device_id: str, low: str, high: str) -> list[dict[str, Any]]:
    """The device's items with ``low <= bucket <= high``, decoded (one paginated, consistent Query)."""
    return query_items(
        client,
        what=f"Query {table}",
        TableName=table,
        KeyConditionExpression="device_id = :d AND #b BETWEEN :lo AND :hi",
        ExpressionAttributeNames={"#b": "bucket"},
        ExpressionAttributeValues={":d": {"S": device_id}, ":lo": {"S": low}, ":hi": {"S": high}},
        ConsistentRead=True,
    )


def scan_items(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the aggregates table, decoded (for reports over a whole fleet)."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(decode_item(raw) for raw in page.get("Items", []))
    return items


def fleet_buckets(client: Any, table: str) -> list[dict[str, Any]]:
    """Every device's hours and days with data, closed or open, as plain rows."""
    return [
        {"device_id": d, "bucket": b, **figures}
        for (d, b), figures in logical_buckets(scan_items(client, table)).items()
    ]
