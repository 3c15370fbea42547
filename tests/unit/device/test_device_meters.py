"""The simulated meter: deterministic, monotonic register, register = integral of power."""

from __future__ import annotations

import math

import pytest

from device.meters import MS_PER_HOUR, SimulatedMeter

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
