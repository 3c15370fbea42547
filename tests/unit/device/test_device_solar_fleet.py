"""Solar in the wiring: which virtual boxes get it, what `device simulate` offers, and a box
that restarts goes on from both registers in its spool."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from device import certs
from device.cli import device
from device.meters import SimulatedMeter
from device.runtime import build_box, device_ids, simulated_settings
from device.settings import DeviceSettings
from device.spool import Sample, Spool
from readings.errors import ConfigError

T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z
NOON = T0 + 12 * 3_600_000


def fleet(solar_kw: float, solar_every: int, count: int = 7) -> list[DeviceSettings]:
    base = DeviceSettings(simulated={"seed": 10, "solar_kw": solar_kw})
    return [
        simulated_settings(base, i, thing, Path("spool"), solar_every=solar_every)
        for i, thing in enumerate(device_ids("box-", count))
    ]


def test_solar_goes_to_the_first_box_and_every_nth_after_it() -> None:
    assert [s.simulated.solar_kw for s in fleet(5.0, 3)] == [5.0, 0.0, 0.0, 5.0, 0.0, 0.0, 5.0]
    assert [s.simulated.solar_kw for s in fleet(5.0, 1)] == [5.0] * 7
    assert [s.simulated.solar_kw for s in fleet(0.0, 1)] == [0.0] * 7
    with pytest.raises(ConfigError):
        fleet(5.0, 0)


def test_simulate_documents_the_solar_option_with_an_example() -> None:
    result = CliRunner().invoke(device, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "--solar-kw" in result.output and "--solar-every" in result.output
    assert "wattstream device simulate --devices 10 --solar-kw 5" in result.output
    refused = CliRunner().invoke(device, ["simulate", "--solar-kw", "-1"])
    assert refused.exit_code == 2 and "--solar-kw" in refused.output


def test_a_restarted_box_with_solar_resumes_both_registers(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    certs.init_authority(cert_dir)
    certs.issue_device(cert_dir, "box-sun")
    spool_path = tmp_path / "box-sun.db"
    spool = Spool(spool_path, "box-sun")
    spool.append(Sample(ts_ms=NOON, energy_wh=1_500.0, power_w=0.0, energy_export_wh=2_750.5))
    spool.close()

    settings = DeviceSettings(
        device_id="box-sun", cert_dir=cert_dir, spool_path=spool_path, simulated={"seed": 1, "solar_kw": 5.0}
    )
    box = build_box(settings, now_ms=NOON)
    try:
        assert isinstance(box.meter, SimulatedMeter)
        first = box.meter.read(box.next_read_ms or 0)
        assert (first.energy_wh, first.energy_export_wh) == (1_500.0, 2_750.5)
    finally:
        box.spool.close()
