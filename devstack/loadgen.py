"""Simulated fleet traffic straight onto the stream, as the IoT topic rule would deliver it.

Used by ``wattstream produce``, the demo, the integration tests and the benchmarks. Each
virtual meter has a cumulative register that integrates a random-walk power draw, so the
truth (register deltas per device) is known exactly and independently of the consumer.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.kinesis import KinesisWriter, Record
from readings.models import SCHEMA_VERSION, to_rfc3339


@dataclass
class VirtualMeter:
    device_id: str
    register_wh: float
    power_w: float
    seq: int = 0
    first_register_wh: float | None = None
    readings: int = 0

    def read(self, ts_ms: int, elapsed_ms: int, rng: random.Random) -> dict[str, Any]:
        self.power_w = min(20_000.0, max(50.0, self.power_w * rng.uniform(0.9, 1.1)))
        self.register_wh = round(self.register_wh + self.power_w * elapsed_ms / 3_600_000, 3)
        self.seq += 1
        self.readings += 1
        if self.first_register_wh is None:
            self.first_register_wh = self.register_wh
        return {
            "seq": self.seq,
            "ts": to_rfc3339(ts_ms),
            "energy_wh": self.register_wh,
            "power_w": round(self.power_w, 1),
            "voltage_v": round(rng.uniform(225, 235), 1),
            "current_a": round(self.power_w / 230, 2),
            "pf": 0.97,
        }

    @property
    def energy_wh(self) -> float:
        """What the consumer must count: last register minus the first (the baseline)."""
        return 0.0 if self.first_register_wh is None else self.register_wh - self.first_register_wh


@dataclass
class Fleet:
    """``devices`` meters read every ``interval_ms``; deterministic for a given ``seed``."""

    devices: int
    interval_ms: int = 1000
    seed: int = 7
    prefix: str = "box-"
    meters: list[VirtualMeter] = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.meters = [
            VirtualMeter(f"{self.prefix}{i:04d}", self._rng.uniform(1e5, 1e7), self._rng.uniform(100, 3000))
            for i in range(1, self.devices + 1)
        ]

    def messages(
        self, ts_ms: int, readings_per_message: int, received_ms: int | None = None
    ) -> list[tuple[str, bytes]]:
        """One message per device holding its next ``readings_per_message`` readings.

        Readings are ``interval_ms`` apart and the last one is at ``ts_ms``.
        """
        out = []
        for meter in self.meters:
            readings = [
                meter.read(ts_ms - (readings_per_message - 1 - k) * self.interval_ms, self.interval_ms, self._rng)
                for k in range(readings_per_message)
            ]
            out.append((meter.device_id, rule_record(meter.device_id, readings, received_ms or ts_ms)))
        return out

    def truth(self) -> dict[str, tuple[int, float]]:
        """device_id -> (readings, energy_wh) sent so far."""
        return {m.device_id: (m.readings, m.energy_wh) for m in self.meters if m.readings}


def rule_record(device_id: str, readings: list[dict[str, Any]], received_ms: int, thing: str | None = None) -> bytes:
    """A message as the topic rule puts it on the stream (``thing`` and ``received_ms`` added)."""
    return orjson.dumps(
        {
            "v": SCHEMA_VERSION,
            "device_id": device_id,
            "readings": readings,
            "thing": thing or device_id,
            "received_ms": received_ms,
        }
    )


def put_records(
    kinesis: Any, stream: str, records: list[tuple[str, bytes]], attempts: int = 20, accepted: list[str] | None = None
) -> int:
    """PutRecords through the bridge's writer (``bridge.kinesis``): calls of 500, only refused
    entries retried, each partition key's records in the order given.

    The sequence numbers of the records are appended to ``accepted``, in the order given, when
    it is given.
    """
    writer = KinesisWriter(kinesis, stream, max_attempts=attempts, base_delay_s=0.05, max_delay_s=2.0)
    put = writer.put_all([Record(data, pk) for pk, data in records])
    if accepted is not None:
        accepted.extend(put.sequence_numbers)
    return len(records)


def run_live(kinesis: Any, stream: str, fleet: Fleet, duration_s: float, readings_per_message: int) -> int:
    """Real-time traffic: every device sends a message every ``readings_per_message`` intervals."""
    period_s = fleet.interval_ms * readings_per_message / 1000
    deadline = time.monotonic() + duration_s
    sent = 0
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        now_ms = time.time_ns() // 1_000_000
        sent += put_records(kinesis, stream, fleet.messages(now_ms, readings_per_message))
        next_at += period_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    return sent


def run_backfill(kinesis: Any, stream: str, fleet: Fleet, readings_per_device: int, readings_per_message: int) -> int:
    """As fast as the stream takes it: ``readings_per_device`` readings, ending now."""
    now_ms = time.time_ns() // 1_000_000
    rounds = -(-readings_per_device // readings_per_message)
    start_ms = now_ms - rounds * readings_per_message * fleet.interval_ms
    sent = 0
    for k in range(1, rounds + 1):
        ts_ms = start_ms + k * readings_per_message * fleet.interval_ms
        sent += put_records(kinesis, stream, fleet.messages(ts_ms, readings_per_message, received_ms=now_ms))
    return sent
