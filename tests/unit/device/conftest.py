"""A simulated Eastron SDM630 on pymodbus's own Modbus TCP server, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device.modbus import (
    MAX_REGISTERS_PER_READ,
    REG_CURRENT_L1,
    REG_EXPORT_KWH,
    REG_IMPORT_KWH,
    REG_TOTAL_PF,
    REG_TOTAL_POWER,
    REG_VOLTAGE_L1,
    float32_registers,
)

NAN_REGISTERS = [0x7FC0, 0x0000]
REG_TOTAL_KWH = 0x0156
"""The SDM630's "total kWh" (30343), import + export by Eastron's definition: served, never read."""


@dataclass
class Sdm630State:
    """What the simulated meter shows; the test changes it while the server runs."""

    values: dict[int, float] = field(
        default_factory=lambda: {
            REG_VOLTAGE_L1: 231.5,
            REG_CURRENT_L1: 4.25,
            REG_TOTAL_POWER: 950.0,
            REG_TOTAL_PF: 0.97,
            REG_IMPORT_KWH: 12345.5,
            REG_EXPORT_KWH: 54.75,
            REG_TOTAL_KWH: 12400.25,  # 12345.5 + 54.75
        }
    )
    mode: str = "ok"  # ok | garbage | silent
    delay_s: float = 5.0
    requests: int = 0
    asked: list[tuple[int, int]] = field(default_factory=list)
    """(first register, count) of every request, in order."""


@dataclass
class Sdm630Server:
    port: int
    state: Sdm630State
    unit_id: int = 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _device(state: Sdm630State, *, with_total_register: bool) -> SimDevice:
    async def action(fc: int, start: int, address: int, count: int, registers: list[int], values) -> ExcCodes | None:
        state.requests += 1
        state.asked.append((address, count))
        if count > MAX_REGISTERS_PER_READ or count % 2:
            return ExcCodes.ILLEGAL_VALUE  # an SDM630 answers at most 40 whole float32 values
        if state.mode == "silent":
            await asyncio.sleep(state.delay_s)  # longer than the client's timeout: no answer
        for reg, value in state.values.items():
            words = NAN_REGISTERS if state.mode == "garbage" else float32_registers(value)
            if start <= reg < start + len(registers) - 1:
                registers[reg - start : reg - start + 2] = words
        return None

    blocks = [SimData(0x0000, count=0x0100, values=0, datatype=DataType.REGISTERS)]
    if with_total_register:
        blocks.append(SimData(0x0150, count=0x0010, values=0, datatype=DataType.REGISTERS))
    return SimDevice(id=1, simdata=blocks, action=action)


def _serve(with_total_register: bool) -> Iterator[Sdm630Server]:
    state = Sdm630State()
    port = _free_port()
    loop = asyncio.new_event_loop()
    holder: list[ModbusTcpServer] = []

    async def serve() -> None:
        # pymodbus builds its transport on the running loop, so the server is made in there
        server = ModbusTcpServer(_device(state, with_total_register=with_total_register), address=("127.0.0.1", port))
        holder.append(server)
        await server.serve_forever()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            threading.Event().wait(0.05)
    yield Sdm630Server(port, state)
    asyncio.run_coroutine_threadsafe(holder[0].shutdown(), loop).result(timeout=5)
    thread.join(timeout=5)


@pytest.fixture
def sdm630() -> Iterator[Sdm630Server]:
    yield from _serve(with_total_register=True)


@pytest.fixture
def sdm630_without_total() -> Iterator[Sdm630Server]:
    """An SDM630 variant that answers 0x0156 with "illegal address"."""
    yield from _serve(with_total_register=False)
