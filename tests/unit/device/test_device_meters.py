"""The simulated meter: deterministic, monotonic register, register = integral of power; with
solar, an export register checked against the load of the same seed without it."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict

import pytest

from device.batching import pack
from device.meters import MS_PER_HOUR, SimulatedMeter
from device.spool import SpooledReading
from readings.errors import DeviceError

T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z


def day(meter: SimulatedMeter, step_ms: int = 60_000, hours: int = 24):
    return [meter.read(T0 + i * step_ms) for i in range(hours * MS_PER_HOUR // step_ms + 1)]


def test_same_seed_same_readings_other_seed_other_noise() -> None:
    assert day(SimulatedMeter(seed=7), hours=2) == day(SimulatedMeter(seed=7), hours=2)
    assert day(SimulatedMeter(seed=7), hours=2) != day(SimulatedMeter(seed=8), hours=2)


def test_register_never_decreases_without_reset() -> None:
    samples = day(SimulatedMeter(seed=1, start_energy_wh=5_000.0))
    registers = [s.energy_wh for s in samples]
    assert registers[0] == 5_000.0
    assert all(b >= a for a, b in zip(registers, registers[1:], strict=False))


def test_register_delta_is_the_trapezoid_integral_of_published_power() -> None:
    samples = day(SimulatedMeter(seed=3), step_ms=30_000)
    integral_wh = sum(
        (a.power_w + b.power_w) / 2 * (b.ts_ms - a.ts_ms) / MS_PER_HOUR
        for a, b in zip(samples, samples[1:], strict=False)
    )
    delta_wh = samples[-1].energy_wh - samples[0].energy_wh
    # the register is published rounded to 1 mWh
    assert delta_wh == pytest.approx(integral_wh, abs=0.001)


def test_household_shape_has_its_peaks() -> None:
    meter = SimulatedMeter(seed=0, noise_w=0.0)
    at = {h: meter.shape_w(T0 + h * MS_PER_HOUR) for h in range(24)}
    assert max(at, key=at.get) == 19
    assert at[7] > 2 * at[3] and at[19] > at[7] > at[13]
    # daily energy of the noiseless shape: base 24 h + peaks' Gaussian areas (sigma*sqrt(2*pi))
    expected_wh = 180 * 24 + 900 * 1.0 * math.sqrt(2 * math.pi) + 1600 * 1.5 * math.sqrt(2 * math.pi)
    got_wh = sum(meter.shape_w(T0 + m * 60_000) for m in range(24 * 60)) / 60
    assert got_wh == pytest.approx(expected_wh, rel=0.01)


def test_injected_reset_restarts_the_register() -> None:
    reset_ms = T0 + 30 * 60_000
    samples = day(SimulatedMeter(seed=2, start_energy_wh=100.0, reset_at_ms=(reset_ms,)), hours=1)
    before = [s for s in samples if s.ts_ms < reset_ms]
    at = next(s for s in samples if s.ts_ms == reset_ms)
    assert at.energy_wh == 0.0
    assert before[-1].energy_wh > 100.0
    after = [s.energy_wh for s in samples if s.ts_ms >= reset_ms]
    assert all(b >= a for a, b in zip(after, after[1:], strict=False))


def test_electrical_values_are_consistent() -> None:
    for s in day(SimulatedMeter(seed=4), hours=3):
        assert s.power_w >= 40.0
        assert 0.5 <= s.pf <= 1.0
        assert s.current_a == pytest.approx(s.power_w / (s.voltage_v * s.pf), rel=0.01)


# -- byte for byte what the meter published before the export register existed ------------------

# sha256 of the messages packed from a day of 10 s readings, as recorded before the solar option
# was added (device.meters and device.batching of that time).
GOLDEN_DAYS = [
    ({"seed": 5}, "b88a7dea9c313895d61cecdd750bbf1e893aaad8564e0e16b6b2402dcb16adee"),
    (
        {
            "seed": 9,
            "profile": "small_business",
            "scale": 1.3,
            "utc_offset_h": 5.5,
            "start_energy_wh": 777.0,
            "reset_at_ms": (T0 + 7 * MS_PER_HOUR,),
        },
        "9d5b0e601fafe419802b71cc18b68071768eab47687be4684d6abeaefd90fb6d",
    ),
]


@pytest.mark.parametrize("options,digest", GOLDEN_DAYS)
def test_without_solar_a_day_is_byte_for_byte_what_it_was(options: dict, digest: str) -> None:
    meter = SimulatedMeter(**options)
    readings = [SpooledReading(seq=i + 1, **asdict(meter.read(T0 + i * 10_000))) for i in range(24 * 360)]
    assert all(r.energy_export_wh is None for r in readings)
    sha, i = hashlib.sha256(), 0
    while i < len(readings):
        packed = pack("box-0001", readings[i:], max_readings=50, max_bytes=5120)
        sha.update(packed.payload)
        i += packed.count
    assert sha.hexdigest() == digest


def test_solar_kw_zero_is_no_solar() -> None:
    assert day(SimulatedMeter(seed=6, solar_kw=0.0), hours=14) == day(SimulatedMeter(seed=6), hours=14)


# -- solar: the truth is computed here from the load alone ---------------------------------------


def pv_w(solar_kw: float, ts_ms: int) -> float:
    """sin-shaped output from 06:00 to 18:00 UTC (T0 is midnight UTC), as the model documents."""
    hour = (ts_ms - T0) / 3_600_000 % 24
    return solar_kw * 1000 * math.sin(math.pi * (hour - 6) / 12) if 6 < hour < 18 else 0.0


def trapezoid_wh(points: list[tuple[int, float]]) -> float:
    return sum((p + q) / 2 * (u - t) / 3_600_000 for (t, p), (u, q) in zip(points, points[1:], strict=False))


def test_generation_has_its_documented_shape() -> None:
    meter = SimulatedMeter(seed=0, solar_kw=4.0)
    assert meter.generation_w(T0 + 3 * MS_PER_HOUR) == 0.0 == meter.generation_w(T0 + 20 * MS_PER_HOUR)
    assert meter.generation_w(T0 + 12 * MS_PER_HOUR) == pytest.approx(4000.0)
    # ∫ sin over half a period of 12 h: 4 kW × 12 h × 2/π
    got_wh = sum(meter.generation_w(T0 + s * 1000) for s in range(0, 86_400, 10)) * 10 / 3600
    assert got_wh == pytest.approx(4000 * 12 * 2 / math.pi, rel=1e-6)
    shifted = SimulatedMeter(seed=0, solar_kw=4.0, utc_offset_h=2.0)  # local noon is 10:00 UTC
    assert shifted.generation_w(T0 + 10 * MS_PER_HOUR) == pytest.approx(4000.0)


def test_with_solar_midday_exports_while_the_import_register_stays_flat() -> None:
    step_ms, kw = 60_000, 4.0
    plain = day(SimulatedMeter(seed=3), step_ms=step_ms)
    solar = day(SimulatedMeter(seed=3, solar_kw=kw), step_ms=step_ms)
    net = [round(p.power_w - round(pv_w(kw, p.ts_ms), 1), 1) for p in plain]
    assert [s.power_w for s in solar] == [max(0.0, n) for n in net]

    # the registers are the trapezoid integrals of import and export power
    for i in (60, 6 * 60, 12 * 60, 24 * 60):
        head = list(zip((p.ts_ms for p in plain[: i + 1]), net[: i + 1], strict=True))
        assert solar[i].energy_wh == pytest.approx(trapezoid_wh([(t, max(0.0, n)) for t, n in head]), abs=1e-3)
        assert solar[i].energy_export_wh == pytest.approx(trapezoid_wh([(t, max(0.0, -n)) for t, n in head]), abs=1e-3)

    # where generation exceeds the load at both ends of an interval, import stands still and export rises
    exporting = [i for i in range(1, len(net)) if net[i - 1] < 0 and net[i] < 0]
    assert len(exporting) > 6 * 60  # more than six hours around noon
    for i in exporting:
        assert solar[i].energy_wh == solar[i - 1].energy_wh
        assert solar[i].energy_export_wh > solar[i - 1].energy_export_wh
        assert 6 < (solar[i].ts_ms - T0) / MS_PER_HOUR < 18  # only while the sun is up
    # at night the box with solar is the box without
    night = [i for i, p in enumerate(plain) if (p.ts_ms - T0) / MS_PER_HOUR <= 6]
    assert all(solar[i].power_w == plain[i].power_w and solar[i].energy_wh == plain[i].energy_wh for i in night)
    assert all(solar[i].energy_export_wh == 0.0 for i in night)

    # import − export is the load less the generation, whatever the split
    load_wh = plain[-1].energy_wh - plain[0].energy_wh
    pv_wh = trapezoid_wh([(p.ts_ms, round(pv_w(kw, p.ts_ms), 1)) for p in plain])
    balance_wh = (solar[-1].energy_wh - solar[0].energy_wh) - (solar[-1].energy_export_wh - solar[0].energy_export_wh)
    assert balance_wh == pytest.approx(load_wh - pv_wh, abs=2e-3)
    assert solar[-1].energy_export_wh > 15_000  # most of 30.6 kWh of a sunny day goes to the grid


def test_solar_registers_resume_and_reset_together() -> None:
    resumed = SimulatedMeter(seed=2, solar_kw=5.0, start_energy_wh=100.0, start_energy_export_wh=40.0)
    first = resumed.read(T0 + 12 * MS_PER_HOUR)
    assert (first.energy_wh, first.energy_export_wh) == (100.0, 40.0)
    reset_ms = T0 + 13 * MS_PER_HOUR
    meter = SimulatedMeter(seed=2, solar_kw=5.0, start_energy_export_wh=40.0, reset_at_ms=(reset_ms,))
    samples = [meter.read(T0 + 12 * MS_PER_HOUR + i * 60_000) for i in range(121)]
    at = next(s for s in samples if s.ts_ms == reset_ms)
    assert (at.energy_wh, at.energy_export_wh) == (0.0, 0.0)
    assert samples[-1].energy_export_wh > 0.0


def test_negative_solar_is_refused() -> None:
    with pytest.raises(DeviceError):
        SimulatedMeter(solar_kw=-1.0)
