"""A small fleet written through the shard processor, and what the API must say about it.

The truth here shares no code with batcher/, sinks/ or api/: each meter's readings, every
register rise spread over the UTC quarters its span covers in proportion to time, and local
intervals grouped from those quarters with zoneinfo alone.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from amazon_kclpy.messages import Record

from consumer.settings import Settings
from readings.models import to_rfc3339
from sinks.registry import DeviceInfo, RegistryStore
from tests.integration.test_processor_protocol import BASE_SEQ, Checkpointer, feed, start

QUARTER_MS = 900_000
MINUTE_MS = 60_000


@dataclass
class Meter:
    """One box: its zone, registry entry (None: never registered) and readings by seq."""

    device_id: str
    tz: str
    info: DeviceInfo | None
    readings: list[dict] = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.readings[-1]

    def quarters(self) -> dict[int, float]:
        """UTC quarter start -> Wh: each rise spread over its span in proportion to time."""
        out: dict[int, float] = defaultdict(float)
        for a, b in zip(self.readings, self.readings[1:], strict=False):
            rise, t0, t1 = b["energy_wh"] - a["energy_wh"], a["ts_ms"], b["ts_ms"]
            q = t0 - t0 % QUARTER_MS
            while q < t1:
                covered = min(q + QUARTER_MS, t1) - max(q, t0)
                out[q] += rise * covered / (t1 - t0)
                q += QUARTER_MS
        return dict(out)

    def energy_wh(self, start_ms: int, end_ms: int) -> float:
        return sum(wh for q, wh in self.quarters().items() if start_ms <= q < end_ms)

    def received(self, start_ms: int, end_ms: int) -> int:
        return sum(1 for r in self.readings if start_ms <= r["ts_ms"] < end_ms)


def meter(
    device_id: str,
    tz: str,
    start_ms: int,
    end_ms: int,
    *,
    info: DeviceInfo | None,
    skip: tuple[int, int] | None = None,
) -> Meter:
    """A reading a minute in [start_ms, end_ms]; the minutes in ``skip`` (start, end) are never
    sent, so their seqs are a gap, while the register goes on counting."""
    found = Meter(device_id, tz, info)
    register, seq, ts = 5_000.0, 1, start_ms
    while ts <= end_ms:
        minute = ts // MINUTE_MS
        step_wh = 1.0 + (minute * 7919 % 13) / 4  # 60 W to 255 W, no two neighbours alike
        if not (skip and skip[0] <= ts < skip[1]):
            found.readings.append({"seq": seq, "ts_ms": ts, "energy_wh": round(register, 3), "power_w": step_wh * 60})
        register += step_wh
        seq += 1
        ts += MINUTE_MS
    return found


def write(meters: list[Meter], settings: Settings, *, received_ms: int) -> None:
    """Register the boxes that have an entry, and feed their readings to one shard processor."""
    registry = RegistryStore(settings.client("dynamodb"), settings.aggregates_table)
    payloads: list[tuple[str, bytes]] = []
    for m in meters:
        if m.info is not None:
            registry.put(m.info)
        for k in range(0, len(m.readings), 50):
            chunk = m.readings[k : k + 50]
            readings = [
                {"seq": r["seq"], "ts": to_rfc3339(r["ts_ms"]), "energy_wh": r["energy_wh"], "power_w": r["power_w"]}
                for r in chunk
            ]
            doc = {"v": 1, "device_id": m.device_id, "thing": m.device_id, "received_ms": received_ms}
            payloads.append((m.device_id, orjson.dumps({**doc, "readings": readings})))
    records = [
        Record(
            {
                "data": base64.b64encode(p).decode(),
                "partitionKey": device_id,
                "sequenceNumber": str(BASE_SEQ + i * 1_000_000),
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": received_ms,
            }
        )
        for i, (device_id, p) in enumerate(payloads)
    ]
    # Several batches: registry thresholds hold from the batch after the one that met the device.
    proc = start(Settings(max_records=25, max_age_s=3600))
    done = Checkpointer()
    feed(proc, records, done)
    proc.shutdown_requested(type("S", (), {"checkpointer": done})())
    assert done.checkpoints, "the processor checkpointed nothing"


def local_midnight(ts_ms: int, tz: str, days: int = 0) -> int:
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(zone).date() + timedelta(days=days)
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def local_intervals(start_ms: int, end_ms: int, every: str, tz: str) -> list[tuple[int, int, str]]:
    """(start_ms, end_ms, local RFC 3339 start) of every local interval in [start_ms, end_ms), from
    the UTC quarters grouped by their wall-clock interval and offset."""
    zone = ZoneInfo(tz)
    groups: dict[tuple, list[int]] = {}
    for q in range(start_ms, end_ms, QUARTER_MS):
        t = datetime.fromtimestamp(q / 1000, UTC).astimezone(zone)
        key = {
            "15m": (t.date(), t.hour, t.minute, t.utcoffset()),
            "1h": (t.date(), t.hour, t.utcoffset()),
            "1d": (t.date(),),
        }[every]
        groups.setdefault(key, []).append(q)
    return [
        (qs[0], qs[-1] + QUARTER_MS, datetime.fromtimestamp(qs[0] / 1000, UTC).astimezone(zone).isoformat())
        for qs in groups.values()
    ]
