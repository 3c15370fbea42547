"""The SDM630 meter against pymodbus's server: values, fallback, timeout/garbage and recovery."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import pytest
from pymodbus.client import ModbusTcpClient

from device.meters import MeterError
from device.modbus import ModbusMeter, float32
from device.settings import ModbusSettings

if TYPE_CHECKING:  # the fixture's type, from tests/unit/device/conftest.py
    from conftest import Sdm630Server


def meter_for(server: Sdm630Server, timeout_s: float = 0.3) -> ModbusMeter:
    return ModbusMeter.from_settings(
        ModbusSettings(host="127.0.0.1", port=server.port, unit_id=1, timeout_s=timeout_s, retries=0)
    )


def f32(value: float) -> float:
    """What a float32 register pair can hold of ``value``."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def test_float32_is_big_endian_high_word_first() -> None:
    assert float32([0x4366, 0x8000], 0) == 230.5  # 0x43668000 is 230.5 in IEEE 754


def test_reads_the_sdm630_registers(sdm630: Sdm630Server) -> None:
    meter = meter_for(sdm630)
    sample = meter.read(1_000)
    assert sample.ts_ms == 1_000
    assert sample.energy_wh == pytest.approx(f32(12400.25) * 1000)  # 0x0156 is preferred
    assert sample.voltage_v == pytest.approx(231.5)
    assert sample.current_a == pytest.approx(4.25)
    assert sample.power_w == pytest.approx(950.0)
    assert sample.pf == pytest.approx(f32(0.97), abs=1e-4)
    meter.close()


def test_falls_back_to_import_register_when_0x0156_is_missing(sdm630_without_total: Sdm630Server) -> None:
    meter = meter_for(sdm630_without_total)
    assert meter.read(1).energy_wh == pytest.approx(12345.5 * 1000)
    assert meter.read(2).energy_wh == pytest.approx(12345.5 * 1000)
    meter.close()


def test_export_is_zero_import_power(sdm630: Sdm630Server) -> None:
    sdm630.state.values[0x0034] = -1200.0
    assert meter_for(sdm630).read(1).power_w == 0.0


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
