"""The soak's direct producer: a fleet whose meters misbehave, and a plain account of it.

Each device has one behaviour, so what the consumer must store follows from the readings
alone, without the consumer's rules:

- ``clean``: a rising register;
- ``duplicate``: some messages are put a second time, later (a replayed rule, a QoS 1 resend);
- ``reorder``: now and then two consecutive messages are put in swapped order;
- ``reset``: once, the register restarts from a few Wh and rises from there (a new meter);
- ``glitch``: now and then one reading reads 0 and the next is back on the register.

The account, per device: the distinct readings by seq (each counts one sample in its hour) and
the energy the register shows, which is the last value less the first, plus for a reset the
value before it (the new cycle brings its own value). A reordered pair leaves the energy whole
(only where inside the span it falls may change), a glitch counts nothing, a duplicate once.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.loadgen import rule_record

BEHAVIOURS = ("clean", "duplicate", "reorder", "reset", "glitch")


@dataclass
class Meter:
    device_id: str
    behaviour: str
    energy_wh: float
    power_w: float
    seq: int = 0
    readings: dict[int, dict[str, Any]] = field(default_factory=dict)
    before_reset_wh: float | None = None
    held: tuple[str, bytes] | None = None
    """A message kept back to be put after the next one (``reorder``)."""


@dataclass
class Corpus:
    devices: int
    seed: int = 1
    per_message: int = 5
    interval_ms: int = 1000
    prefix: str = "kin-"
    start_ms: int = 0
    """The time of the first reading; each wave's readings follow the last one's."""
    meters: list[Meter] = field(init=False)
    resent: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._waves = 0
        self.meters = [
            Meter(
                f"{self.prefix}{i:04d}",
                BEHAVIOURS[i % len(BEHAVIOURS)],
                self._rng.uniform(1e5, 1e6),
                self._rng.uniform(200, 4000),
            )
            for i in range(self.devices)
        ]

    @property
    def period_s(self) -> float:
        """Wall time one wave covers: put a wave this often to keep pace with the clock."""
        return self.per_message * self.interval_ms / 1000

    def wave(self, now_ms: int) -> list[tuple[str, bytes]]:
        """The next message of every device (received at ``now_ms``), in put order."""
        out: list[tuple[str, bytes]] = []
        rng = self._rng
        first_ms = self.start_ms + self._waves * self.per_message * self.interval_ms
        self._waves += 1
        for meter in self.meters:
            readings = []
            for k in range(self.per_message):
                ts_ms = first_ms + k * self.interval_ms
                meter.seq += 1
                meter.energy_wh += meter.power_w * self.interval_ms / 3_600_000
                value = meter.energy_wh
                if meter.behaviour == "reset" and meter.before_reset_wh is None and meter.seq > 100 and k == 2:
                    meter.before_reset_wh = meter.readings[meter.seq - 1]["energy_wh"]
                    meter.energy_wh = value = 5.0
                elif meter.behaviour == "glitch" and k == 2 and rng.random() < 0.2:
                    value = 0.0
                reading = {
                    "seq": meter.seq,
                    "ts": _rfc3339(ts_ms),
                    "energy_wh": round(value, 3),
                    "power_w": round(meter.power_w, 1),
                }
                meter.readings[meter.seq] = reading
                readings.append(reading)
            message = (meter.device_id, rule_record(meter.device_id, readings, now_ms))
            if meter.behaviour == "duplicate" and rng.random() < 0.3:
                self.resent.append(message)
            if meter.behaviour == "reorder":
                if meter.held is not None:
                    out.extend([message, meter.held])
                    meter.held = None
                    continue
                if meter.seq > self.per_message and rng.random() < 0.3:  # never the baseline
                    meter.held = message
                    continue
            out.append(message)
        # Earlier messages put again, behind newer ones.
        if self.resent and rng.random() < 0.5:
            out.extend(self.resent)
            self.resent = []
        return out

    def flush(self) -> list[tuple[str, bytes]]:
        """What is still held back (call once at the end)."""
        out = [m.held for m in self.meters if m.held is not None] + self.resent
        for meter in self.meters:
            meter.held = None
        self.resent = []
        return out

    def expected_energy_wh(self) -> dict[str, float]:
        out = {}
        for meter in self.meters:
            if not meter.readings:
                continue
            first, last = meter.readings[min(meter.readings)], meter.readings[max(meter.readings)]
            energy = last["energy_wh"] - first["energy_wh"]
            if meter.before_reset_wh is not None:
                energy += meter.before_reset_wh
            out[meter.device_id] = energy
        return out

    def expected_samples(self) -> dict[tuple[str, str], int]:
        """(device_id, UTC hour ``h#YYYY-MM-DDTHH``) -> distinct readings."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        for meter in self.meters:
            for reading in meter.readings.values():
                out[(meter.device_id, f"h#{reading['ts'][:13]}")] += 1
        return dict(out)


def _rfc3339(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
