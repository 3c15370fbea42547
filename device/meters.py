"""Meter sources: the one port through which the box reads energy, and a simulated meter.

A source returns a ``Sample`` (cumulative import register ``energy_wh`` plus optional
instantaneous values) or raises ``MeterError`` with a reason code; the box logs and counts the
failure and tries again at the next interval (``NoNewReading``, a source pushed to that has
nothing new yet, is skipped quietly). The Modbus source lives in ``device.modbus``, the sources
of other meter families in ``device.sources``.

The simulated meter's load model (a documented model, deterministic for a given seed):

    power_w(t) = base_w
               + Σ peak_w · exp(-((h - centre_h) / width_h)² / 2)   for each daily peak
               + noise_w(t)                                           AR(1), σ = noise_w

with ``h`` the local hour of day. The household profile has a morning peak (07:30, ±1 h) and
an evening peak (19:00, ±1.5 h); the small-business profile a working-day plateau from two
broad peaks (10:00 and 15:00, ±2.5 h). Power never goes below ``min_w`` (standby loads).

The register integrates power with the trapezoidal rule between consecutive reads:
``energy_wh += (p_prev + p_now) / 2 · Δt_h``, so for the published readings the register
delta equals the trapezoid integral of the published power exactly. A reset (meter replaced,
register rolled over) sets the register to 0 at the configured times.

Solar (``solar_kw`` > 0): a PV system behind the meter, noiseless and cloudless, with ``h`` the
local hour as above::

    generation_w(t) = solar_kw · 1000 · sin(π · (h − 6) / 12)   for 6 < h < 18, else 0
    net_w(t)        = round(load_w(t) − round(generation_w(t), 1), 1)
    import_w = max(0, net_w)        export_w = max(0, −net_w)

The published ``power_w`` is ``import_w`` and the export register (OBIS 2.8.0,
``energy_export_wh``) integrates ``export_w`` by the same trapezoid rule, so while generation
exceeds the load the import register stays flat and the export register rises. Generation draws
nothing from the random stream: a meter with solar sees the very load of the same seed without,
which makes its registers checkable from the load alone. Without solar there is no export
register (``energy_export_wh`` None) and the readings are those of a meter that never had the
option. A reset restarts both registers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal, Protocol

from device.spool import Sample
from readings.errors import DeviceError

MS_PER_HOUR = 3_600_000
SUNRISE_H = 6.0
SUNSET_H = 18.0
Profile = Literal["household", "small_business"]


class MeterError(DeviceError):
    """A read failed; ``reason`` is the metric label (timeout, garbage, connection, protocol)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class NoNewReading(MeterError):  # noqa: N818 - an outcome, not a failure: the box skips the interval quietly
    """A source that is pushed to (MQTT, a serial line) has nothing newer than its last reading.

    Not a failure: the device sends on its own schedule (a Tasmota every ``TelePeriod``) and the
    box reads more often. A device that stays silent too long raises ``MeterError("timeout")``.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("no_new_reading", detail)


class MeterSource(Protocol):
    """Something that reads a meter. ``read`` is called once per reading interval."""

    def read(self, now_ms: int) -> Sample:
        """The meter's values at ``now_ms`` (UTC epoch ms); raises ``MeterError`` on failure."""
        ...

    def close(self) -> None:
        """Release connections; called once when the box stops."""
        ...


@dataclass(frozen=True, slots=True)
class Peak:
    centre_h: float
    width_h: float
    power_w: float


PROFILES: dict[str, tuple[float, tuple[Peak, ...]]] = {
    # base load (fridge, router, standby) and the two daily peaks of a household
    "household": (180.0, (Peak(7.5, 1.0, 900.0), Peak(19.0, 1.5, 1600.0))),
    # a shop or office: modest base, a broad working-day plateau
    "small_business": (600.0, (Peak(10.0, 2.5, 3500.0), Peak(15.0, 2.5, 3200.0))),
}


@dataclass(slots=True)
class SimulatedMeter:
    """A deterministic single-phase meter following a daily load shape (module docstring)."""

    seed: int = 0
    profile: Profile = "household"
    scale: float = 1.0
    noise_w: float = 60.0
    min_w: float = 40.0
    utc_offset_h: float = 0.0
    voltage_v: float = 230.0
    start_energy_wh: float = 0.0
    reset_at_ms: tuple[int, ...] = ()
    """Instants at which the register restarts from 0 (injected resets for tests and demos)."""
    solar_kw: float = 0.0
    """Peak output of the PV system behind the meter; 0 = none (and no export register)."""
    start_energy_export_wh: float = 0.0
    _rng: random.Random = field(init=False, repr=False)
    _energy_wh: float = field(init=False, repr=False)
    _export_wh: float = field(init=False, repr=False)
    _last_ms: int | None = field(init=False, default=None, repr=False)
    _last_power_w: float = field(init=False, default=0.0, repr=False)
    _last_export_w: float = field(init=False, default=0.0, repr=False)
    _noise: float = field(init=False, default=0.0, repr=False)
    _resets_done: int = field(init=False, default=0, repr=False)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise DeviceError(f"unknown load profile {self.profile!r}")
        if not self.solar_kw >= 0:
            raise DeviceError(f"solar_kw must be >= 0, not {self.solar_kw}")
        self._rng = random.Random(self.seed)
        self._energy_wh = self.start_energy_wh
        self._export_wh = self.start_energy_export_wh
        self.reset_at_ms = tuple(sorted(self.reset_at_ms))

    def _hour(self, ts_ms: int) -> float:
        return ((ts_ms / MS_PER_HOUR) + self.utc_offset_h) % 24.0

    def shape_w(self, ts_ms: int) -> float:
        """The noiseless load at ``ts_ms``."""
        base_w, peaks = PROFILES[self.profile]
        hour = self._hour(ts_ms)
        power = base_w
        for peak in peaks:
            # the distance on the 24 h circle, so a 23:00 peak also lifts 00:30
            d = min(abs(hour - peak.centre_h), 24.0 - abs(hour - peak.centre_h))
            power += peak.power_w * math.exp(-0.5 * (d / peak.width_h) ** 2)
        return power * self.scale

    def generation_w(self, ts_ms: int) -> float:
        """The PV output at ``ts_ms`` (module docstring); 0 without solar and at night."""
        hour = self._hour(ts_ms)
        if self.solar_kw == 0 or not SUNRISE_H < hour < SUNSET_H:
            return 0.0
        return self.solar_kw * 1000.0 * math.sin(math.pi * (hour - SUNRISE_H) / (SUNSET_H - SUNRISE_H))

    def _power_w(self, ts_ms: int) -> float:
        # AR(1) noise: appliances switch on and off, the load does not jump independently
        self._noise = 0.8 * self._noise + self._rng.gauss(0.0, self.noise_w * 0.6)
        return max(self.min_w, self.shape_w(ts_ms) + self._noise)

    def read(self, now_ms: int) -> Sample:
        # integrate the power as published, so the register agrees with what consumers see
        net_w = round(self._power_w(now_ms), 1)
        solar = self.solar_kw > 0
        if solar:
            net_w = round(net_w - round(self.generation_w(now_ms), 1), 1)
        power_w, export_w = max(0.0, net_w), max(0.0, -net_w)
        if self._last_ms is not None:
            if now_ms < self._last_ms:
                raise MeterError("protocol", f"clock went back from {self._last_ms} to {now_ms}")
            elapsed_ms = now_ms - self._last_ms
            self._energy_wh += (self._last_power_w + power_w) / 2.0 * elapsed_ms / MS_PER_HOUR
            self._export_wh += (self._last_export_w + export_w) / 2.0 * elapsed_ms / MS_PER_HOUR
        while self._resets_done < len(self.reset_at_ms) and self.reset_at_ms[self._resets_done] <= now_ms:
            self._energy_wh = self._export_wh = 0.0
            self._resets_done += 1
        self._last_ms, self._last_power_w, self._last_export_w = now_ms, power_w, export_w
        voltage_v = self.voltage_v + self._rng.gauss(0.0, 1.5)
        pf = min(1.0, max(0.5, 0.95 + self._rng.gauss(0.0, 0.02)))
        return Sample(
            ts_ms=now_ms,
            energy_wh=round(self._energy_wh, 3),
            power_w=power_w,
            voltage_v=round(voltage_v, 1),
            current_a=round(abs(net_w) / (voltage_v * pf), 3),  # current flows either way
            pf=round(pf, 3),
            energy_export_wh=round(self._export_wh, 3) if solar else None,
        )

    def close(self) -> None:
        return None
