"""The SDM630 meter against pymodbus's server: values, both energy registers, timeout/garbage and
recovery."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import pytest
from pymodbus.client import ModbusTcpClient

from device.meters import MeterError
from device.modbus import REG_EXPORT_KWH, REG_IMPORT_KWH, REG_TOTAL_POWER, ModbusMeter, float32
from device.settings import ModbusSettings

if TYPE_CHECKING:  # the fixture's type, from tests/unit/device/conftest.py
    from conftest import Sdm630Server

# Input registers of the SDM630 as Eastron's protocol tables number them (30001 = 0x0000):
# total import kWh is 30073, total export kWh 30075. Written out here, not taken from the code.
IMPORT_KWH_30073 = 30073 - 30001
EXPORT_KWH_30075 = 30075 - 30001


def meter_for(server: Sdm630Server, timeout_s: float = 0.3) -> ModbusMeter:
    return ModbusMeter.from_settings(
        ModbusSettings(host="127.0.0.1", port=server.port, unit_id=1, timeout_s=timeout_s, retries=0)
    )


def f32(value: float) -> float:
    """What a float32 register pair can hold of ``value``."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def test_float32_is_big_endian_high_word_first() -> None:
    assert float32([0x4366, 0x8000], 0) == 230.5  # 0x43668000 is 230.5 in IEEE 754


def test_the_energy_registers_are_the_ones_eastron_documents() -> None:
    assert (REG_IMPORT_KWH, REG_EXPORT_KWH) == (IMPORT_KWH_30073, EXPORT_KWH_30075) == (0x0048, 0x004A)


def test_reads_the_sdm630_registers(sdm630: Sdm630Server) -> None:
    meter = meter_for(sdm630)
    sample = meter.read(1_000)
    assert sample.ts_ms == 1_000
    # import and export in Wh; the served "total kWh" (import + export, 12400.25) is not used
    assert sample.energy_wh == 12_345_500.0
    assert sample.energy_export_wh == 54_750.0
    assert sample.voltage_v == pytest.approx(231.5)
    assert sample.current_a == pytest.approx(4.25)
    assert sample.power_w == pytest.approx(950.0)
    assert sample.pf == pytest.approx(f32(0.97), abs=1e-4)
    meter.close()


def test_one_request_within_the_meters_limit_per_read(sdm630: Sdm630Server) -> None:
    meter = meter_for(sdm630)
    meter.read(1)
    meter.read(2)
    assert sdm630.state.asked == [(0x0000, 76), (0x0000, 76)]  # 0x0000..0x004B, at most 80
    meter.close()


def test_a_meter_without_the_total_register_reads_the_same(sdm630_without_total: Sdm630Server) -> None:
    meter = meter_for(sdm630_without_total)
    sample = meter.read(1)
    assert (sample.energy_wh, sample.energy_export_wh) == (12_345_500.0, 54_750.0)
    meter.close()


@pytest.mark.parametrize(
    "export_kwh,expected_wh",
    [(0.0, 0.0), (0.001, round(f32(0.001) * 1000, 3)), (7.3, round(f32(7.3) * 1000, 3)), (98765.4, 98_765_398.438)],
)
def test_export_register_is_kwh_as_wh(sdm630: Sdm630Server, export_kwh: float, expected_wh: float) -> None:
    sdm630.state.values[EXPORT_KWH_30075] = export_kwh
    assert meter_for(sdm630).read(1).energy_export_wh == expected_wh


def test_an_exporting_meter_reads_zero_import_power_and_a_rising_export_register(sdm630: Sdm630Server) -> None:
    meter = meter_for(sdm630)
    sdm630.state.values[REG_TOTAL_POWER] = -1200.0
    first = meter.read(1)
    sdm630.state.values[EXPORT_KWH_30075] = 54.75 + 0.5  # half a kWh sent to the grid
    second = meter.read(2)
    assert first.power_w == 0.0 == second.power_w
    assert second.energy_wh == first.energy_wh == 12_345_500.0
    assert second.energy_export_wh - first.energy_export_wh == 500.0
    meter.close()


def test_a_negative_export_register_is_garbage(sdm630: Sdm630Server) -> None:
    sdm630.state.values[EXPORT_KWH_30075] = -1.0
    with pytest.raises(MeterError) as info:
        meter_for(sdm630).read(1)
    assert info.value.reason == "garbage"


@pytest.mark.parametrize("mode,reason", [("garbage", "garbage"), ("silent", "timeout")])
def test_bad_meter_raises_with_reason_then_recovers(sdm630: Sdm630Server, mode: str, reason: str) -> None:
    meter = meter_for(sdm630)
    assert meter.read(1).power_w == pytest.approx(950.0)

    sdm630.state.mode = mode
    sdm630.state.delay_s = 1.0
    with pytest.raises(MeterError) as info:
        meter.read(2)
    assert info.value.reason == reason

    sdm630.state.mode = "ok"
    sdm630.state.values[0x0034] = 321.0
    assert meter.read(3).power_w == pytest.approx(321.0)
    meter.close()


def test_unreachable_meter_is_a_connection_error_and_counts_nothing_else() -> None:
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    meter = ModbusMeter(ModbusTcpClient("127.0.0.1", port=port, timeout=0.2, retries=0))
    with pytest.raises(MeterError) as info:
        meter.read(1)
    assert info.value.reason == "connection"


def test_rtu_settings_build_a_serial_client() -> None:
    meter = ModbusMeter.from_settings(
        ModbusSettings(transport="rtu", serial_port="/dev/ttyNONE", baudrate=19200, parity="E", unit_id=7)
    )
    assert meter.name == "rtu:/dev/ttyNONE" and meter.unit_id == 7
    comm = meter.client.comm_params
    assert (comm.baudrate, comm.parity, comm.stopbits) == (19200, "E", 1)
