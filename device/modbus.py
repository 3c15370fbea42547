"""An Eastron SDM630-compatible meter over Modbus TCP or RTU (pymodbus).

Register map used (input registers, function code 4, IEEE 754 float32, big-endian words; Eastron
"SDM630 Modbus Protocol", input register table)::

    0x0000  30001  phase 1 line-to-neutral voltage   V
    0x0006  30007  phase 1 current                   A
    0x0034  30053  total system power                W    (negative while exporting)
    0x003E  30063  total system power factor         -
    0x0048  30073  total import energy               kWh  -> energy_wh         (OBIS 1.8.0)
    0x004A  30075  total export energy               kWh  -> energy_export_wh  (OBIS 2.8.0)

One read is one request: the block 0x0000..0x004B (76 registers, within the 80 an SDM630
answers at once). Both registers are sent in Wh (kWh × 1000, to 1 mWh). The meter's "total kWh"
at 0x0156 is not read: Eastron defines it as import + export, so on a site that exports it would
count the energy sent to the grid as consumed.

Failures become ``MeterError`` with a reason, which the box logs and counts; the next read
reconnects, so the box resumes by itself when the meter answers again:

- ``timeout``: no (complete) answer within ``timeout_s`` × (1 + retries);
- ``connection``: the TCP connection or serial port cannot be opened;
- ``protocol``: the meter answered with a Modbus exception;
- ``garbage``: an answer that cannot be a reading (NaN, infinite, a negative register,
  voltage or current outside 0..1000, power beyond ±1 MW).

``power_w`` on the wire is import power: an exporting meter reports 0, and what it exports
shows in the export register.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Protocol

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from device.meters import MeterError
from device.settings import ModbusSettings
from device.spool import Sample

REG_VOLTAGE_L1 = 0x0000
REG_CURRENT_L1 = 0x0006
REG_TOTAL_POWER = 0x0034
REG_TOTAL_PF = 0x003E
REG_IMPORT_KWH = 0x0048
REG_EXPORT_KWH = 0x004A
BLOCK_START = 0x0000
BLOCK_COUNT = REG_EXPORT_KWH + 2  # 0x0000..0x004B
MAX_REGISTERS_PER_READ = 80
"""The most registers an SDM630 returns for one request (40 float32 values)."""


class ModbusClient(Protocol):
    """The part of pymodbus's sync clients the meter uses."""

    connected: bool

    def connect(self) -> bool: ...

    def close(self) -> None: ...

    def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Any: ...


def float32(registers: list[int], offset: int) -> float:
    """The big-endian float32 at ``offset`` (two 16-bit registers, high word first)."""
    return struct.unpack(">f", struct.pack(">HH", registers[offset], registers[offset + 1]))[0]


def float32_registers(value: float) -> list[int]:
    """The two registers an SDM630 sends for ``value`` (used by the test server too)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


class ModbusMeter:
    """A ``MeterSource`` reading an SDM630 (see module docstring)."""

    def __init__(self, client: ModbusClient, *, unit_id: int = 1, name: str = "modbus") -> None:
        self.client = client
        self.unit_id = unit_id
        self.name = name

    @classmethod
    def from_settings(cls, settings: ModbusSettings) -> ModbusMeter:
        from pymodbus.client import ModbusSerialClient, ModbusTcpClient

        if settings.transport == "rtu":
            try:
                client: Any = ModbusSerialClient(
                    settings.serial_port,
                    baudrate=settings.baudrate,
                    parity=settings.parity,
                    stopbits=settings.stopbits,
                    bytesize=8,
                    timeout=settings.timeout_s,
                    retries=settings.retries,
                )
            except RuntimeError as exc:  # pyserial missing
                raise MeterError("connection", str(exc)) from exc
            name = f"rtu:{settings.serial_port}"
        else:
            client = ModbusTcpClient(
                settings.host, port=settings.port, timeout=settings.timeout_s, retries=settings.retries
            )
            name = f"tcp:{settings.host}:{settings.port}"
        return cls(client, unit_id=settings.unit_id, name=name)

    def _request(self, address: int, count: int) -> Any:
        try:
            response = self.client.read_input_registers(address, count=count, device_id=self.unit_id)
        except ConnectionException as exc:
            self.client.close()
            raise MeterError("connection", f"{self.name}: {exc}") from exc
        except ModbusIOException as exc:
            self.client.close()  # a late answer must not be taken for the next request's
            raise MeterError("timeout", f"{self.name}: {exc}") from exc
        except ModbusException as exc:
            self.client.close()
            raise MeterError("protocol", f"{self.name}: {exc}") from exc
        if response.isError():
            return response
        if len(getattr(response, "registers", [])) != count:
            self.client.close()
            raise MeterError("garbage", f"{self.name}: {count} registers asked, got {len(response.registers)}")
        return response

    def read(self, now_ms: int) -> Sample:
        if not self.client.connected and not self.client.connect():
            raise MeterError("connection", f"{self.name}: cannot connect")
        response = self._request(BLOCK_START, BLOCK_COUNT)
        if response.isError():
            raise MeterError("protocol", f"{self.name}: exception {response.exception_code} at 0x0000")
        block = list(response.registers)
        import_kwh = float32(block, REG_IMPORT_KWH)
        export_kwh = float32(block, REG_EXPORT_KWH)
        voltage_v = float32(block, REG_VOLTAGE_L1)
        current_a = float32(block, REG_CURRENT_L1)
        power_w = float32(block, REG_TOTAL_POWER)
        pf = float32(block, REG_TOTAL_PF)
        values = (import_kwh, export_kwh, voltage_v, current_a, power_w, pf)
        if not all(math.isfinite(v) for v in values):
            raise MeterError("garbage", f"{self.name}: non-finite value in {values}")
        if import_kwh < 0 or export_kwh < 0:
            raise MeterError("garbage", f"{self.name}: negative register in {values}")
        if not 0 <= voltage_v <= 1000 or not 0 <= current_a <= 1000 or abs(power_w) > 1e6:
            raise MeterError("garbage", f"{self.name}: implausible values {values}")
        return Sample(
            ts_ms=now_ms,
            energy_wh=round(import_kwh * 1000.0, 3),
            power_w=round(max(0.0, power_w), 3),
            voltage_v=round(voltage_v, 3),
            current_a=round(current_a, 4),
            pf=round(pf, 4) if -1.0 <= pf <= 1.0 else None,
            energy_export_wh=round(export_kwh * 1000.0, 3),
        )

    def close(self) -> None:
        self.client.close()
