"""Dutch/Belgian smart meters' P1 port (DSMR 4/5, e-MUCS): telegrams over a serial line.

Documented payload followed (Netbeheer Nederland, "P1 Companion Standard" DSMR 5.0.2, §6.12
telegram format and the OBIS table; the fixtures in ``tests/fixtures/meters/dsmr/`` are the
example telegrams of ndokter/dsmr_parser's test suite, whose CRCs they carry)::

    /ISk5\\2MT382-1000            header, starts the telegram
    0-0:1.0.0(170102192002W)       timestamp YYMMDDhhmmss, W = winter (+01:00), S = summer (+02:00)
    1-0:1.8.1(000004.426*kWh)      import, tariff 1        1-0:1.8.2   import, tariff 2
    1-0:2.8.1(000002.444*kWh)      export, tariff 1        1-0:2.8.2   export, tariff 2
    1-0:1.7.0(00.244*kW)           import power            1-0:32.7.0  voltage L1, 1-0:31.7.0 current L1
    !6EEE                          end: CRC16 of every byte from '/' to '!' inclusive

- ``energy_wh`` = 1.8.1 + 1.8.2 (1.8.0 where a meter sends only a total), ``energy_export_wh``
  = 2.8.1 + 2.8.2 (or 2.8.0); values in ``kWh`` or ``Wh`` (Sagemcom T210-D sends Wh and W),
  converted by their unit; ``power_w`` from 1.7.0 (``kW`` or ``W``).
- The reading's time is ``0-0:1.0.0`` (its W/S letter gives the offset, so no zone is needed);
  a telegram without it (DSMR 2.2/3) is stamped with its time of receipt.
- CRC: CRC-16/ARC (polynomial 0xA001 reflected, initial 0), four upper-case hex digits after
  '!'. A telegram whose CRC does not match is dropped: logged (``dsmr_telegram_dropped``) and
  counted (``wattstream_device_meter_messages_dropped_total{reason="crc"}``), never a reading.
  A telegram without a CRC (``crc=optional`` for DSMR 2.2/3 meters) is taken only when asked.
- Serial: 115200 8N1 (DSMR 4+); ``baud=9600`` means 9600 7E1 (DSMR 2.2/3). ``dsmr+tcp://host:port``
  reads the same bytes from a serial-to-network bridge (ser2net), via pyserial's ``socket://``.

The reader thread keeps at most ``MAX_BUFFER_BYTES`` of an unfinished telegram, so a line of
noise cannot grow the box's memory; a port that disappears is reopened every 2 s.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog

from device import metrics
from device.meters import MeterError, MeterSource
from device.sources.document import RegisterWatch, checked_sample
from device.sources.feed import PushedMeter
from device.sources.spec import MeterSpec
from device.spool import Sample
from readings.errors import ConfigError
from readings.models import to_ts_ms

log = structlog.get_logger("device.sources.dsmr")

MAX_TELEGRAM_BYTES = 8 * 1024
"""Far above a real telegram (≈ 1 KB with a 1024-character text message and four M-Bus devices)."""
MAX_BUFFER_BYTES = 2 * MAX_TELEGRAM_BYTES
WINTER, SUMMER = timezone(timedelta(hours=1)), timezone(timedelta(hours=2))
_LINE = re.compile(rb"^(\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3})((?:\([^()\r\n]*\))+)\s*$")
_VALUE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(?:\*([A-Za-z0-9]+))?$")
_SCALE = {"kwh": 1000.0, "wh": 1.0, "kw": 1000.0, "w": 1.0, "v": 1.0, "a": 1.0}


def crc16(data: bytes) -> int:
    """CRC-16/ARC: reflected polynomial 0xA001, initial value 0 (DSMR 5.0.2 §6.12)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True, slots=True)
class Telegram:
    """A telegram cut out of the byte stream: the bytes from '/' to '!' and the CRC text after it."""

    body: bytes
    crc: bytes

    def crc_ok(self) -> bool:
        return len(self.crc) == 4 and self.crc.upper() == b"%04X" % crc16(self.body)


class TelegramBuffer:
    """Cuts telegrams out of serial bytes that arrive in arbitrary pieces (bounded, see module)."""

    def __init__(self) -> None:
        self._buffer = b""
        self.discarded_bytes = 0

    def feed(self, chunk: bytes) -> list[Telegram]:
        self._buffer += chunk
        out: list[Telegram] = []
        while True:
            start = self._buffer.find(b"/")
            if start < 0:
                self.discarded_bytes += len(self._buffer)
                self._buffer = b""
                break
            bang = self._buffer.find(b"!", start)
            if bang < 0:
                break
            # a later '/' before the '!' means the first telegram was cut off: start again there
            restart = self._buffer.rfind(b"/", start, bang)
            end_of_line = self._buffer.find(b"\n", bang)
            if end_of_line < 0:
                if len(self._buffer) - bang > 8:  # "!XXXX\r\n" is 7 bytes: this is not an end
                    self._buffer = self._buffer[bang + 1 :]
                    continue
                break
            self.discarded_bytes += restart
            out.append(Telegram(self._buffer[restart : bang + 1], self._buffer[bang + 1 : end_of_line].strip()))
            self._buffer = self._buffer[end_of_line + 1 :]
        if len(self._buffer) > MAX_BUFFER_BYTES:
            self.discarded_bytes += len(self._buffer) - MAX_TELEGRAM_BYTES
            self._buffer = self._buffer[-MAX_TELEGRAM_BYTES:]
        return out


def _objects(body: bytes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in body.splitlines():
        match = _LINE.match(raw)
        if match:
            found[match.group(1).decode()] = match.group(2).decode("ascii", "replace")[1:-1].split(")(")
    return found


def _quantity(objects: dict[str, list[str]], code: str, units: tuple[str, ...]) -> float | None:
    values = objects.get(code)
    if not values:
        return None
    match = _VALUE.match(values[-1])
    if not match:
        raise MeterError("garbage", f"{code}({values[-1][:40]}) is not a quantity")
    unit = (match.group(2) or "").lower()
    if unit not in units:
        raise MeterError("garbage", f"{code} in {match.group(2)!r}, expected one of {units}")
    return float(match.group(1)) * _SCALE[unit]


def _timestamp_ms(objects: dict[str, list[str]]) -> int | None:
    values = objects.get("0-0:1.0.0")
    if not values or not re.fullmatch(r"\d{12}[WS]", values[0]):
        return None
    text = values[0]
    try:
        moment = datetime.strptime(text[:12], "%y%m%d%H%M%S").replace(tzinfo=WINTER if text[12] == "W" else SUMMER)
    except ValueError:
        return None
    return to_ts_ms(moment)


def _register(objects: dict[str, list[str]], direction: int) -> float | None:
    tariffs = [_quantity(objects, f"1-0:{direction}.8.{t}", ("kwh", "wh")) for t in (1, 2)]
    if any(t is not None for t in tariffs):
        return sum(t or 0.0 for t in tariffs)
    return _quantity(objects, f"1-0:{direction}.8.0", ("kwh", "wh"))


def parse_telegram(body: bytes, *, received_ms: int, source: str = "dsmr") -> Sample:
    """The sample of one telegram's body (CRC already checked)."""
    objects = _objects(body)
    import_wh = _register(objects, 1)
    if import_wh is None:
        raise MeterError("garbage", f"{source}: telegram without 1-0:1.8.1/1.8.2 or 1.8.0")
    stamp = _timestamp_ms(objects)
    return checked_sample(
        ts_ms=received_ms if stamp is None else stamp,
        source=source,
        energy_wh=import_wh,
        energy_export_wh=_register(objects, 2),
        power_w=_quantity(objects, "1-0:1.7.0", ("kw", "w")),
        voltage_v=_quantity(objects, "1-0:32.7.0", ("v",)),
        current_a=_quantity(objects, "1-0:31.7.0", ("a",)),
    )


class DsmrReader:
    """Turns a byte stream into samples for a ``PushedMeter``: CRC check, drop and count."""

    def __init__(self, meter: PushedMeter, *, crc_required: bool = True, name: str = "dsmr") -> None:
        self.meter, self.crc_required, self.name = meter, crc_required, name
        self.buffer = TelegramBuffer()
        self.watch = RegisterWatch(name)
        self.dropped: dict[str, int] = {}

    def _drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        metrics.METER_MESSAGES_DROPPED.labels(meter=self.name, reason=reason).inc()
        log.warning("dsmr_telegram_dropped", meter=self.name, reason=reason, detail=detail[:200])

    def feed(self, chunk: bytes, received_ms: int) -> None:
        for telegram in self.buffer.feed(chunk):
            if len(telegram.body) > MAX_TELEGRAM_BYTES:
                self._drop("too_large", f"{len(telegram.body)} bytes")
                continue
            if not telegram.crc:
                if self.crc_required:
                    self._drop("crc", "telegram without a CRC (crc=optional reads DSMR 2.2/3 meters)")
                    continue
            elif not telegram.crc_ok():
                self._drop("crc", f"CRC {telegram.crc[:8]!r}, computed {crc16(telegram.body):04X}")
                continue
            try:
                sample = parse_telegram(telegram.body, received_ms=received_ms, source=self.name)
            except MeterError as exc:
                self._drop("garbage", str(exc))
                self.meter.fail(exc, received_ms)
                continue
            self.watch.see(sample)
            self.meter.offer(sample, received_ms)


class SerialLine:
    """The reader thread: opens the port (again after an error) and feeds what it reads."""

    def __init__(self, opener: Callable[[], Any], reader: DsmrReader, *, clock_ms: Callable[[], int]) -> None:
        self.opener, self.reader, self.clock_ms = opener, reader, clock_ms
        self._stop = threading.Event()
        self.port_open = threading.Event()
        """Set while the port is open (tests write to the other end only then)."""
        self._thread = threading.Thread(target=self._run, name=f"dsmr:{reader.name}", daemon=True)

    def start(self) -> SerialLine:
        self._thread.start()
        self.reader.meter.on_close(self.stop)
        self.reader.meter.transport = self
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                port = self.opener()
            except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException, OSError, ValueError
                self.reader.meter.fail(MeterError("connection", f"{self.reader.name}: {exc}"), self.clock_ms())
                self._stop.wait(2.0)
                continue
            self.port_open.set()
            try:
                while not self._stop.is_set():
                    chunk = port.read(4096)
                    if chunk:
                        self.reader.feed(chunk, self.clock_ms())
            except Exception as exc:  # noqa: BLE001 - a vanished USB adapter; reopen it
                log.warning("dsmr_port_failed", meter=self.reader.name, error=str(exc)[:200])
                self._stop.wait(2.0)
            finally:
                self.port_open.clear()
                try:
                    port.close()
                except Exception:  # noqa: BLE001, S110 - closing a port that already failed
                    pass


def build(spec: MeterSpec, *, clock_ms: Callable[[], int], **_: Any) -> MeterSource:
    """The source of ``dsmr+serial:///dev/ttyUSB0`` or ``dsmr+tcp://host:port``."""
    import serial

    baud = spec.int_option("baud", 115200)
    mode = spec.option("mode", "8N1" if baud >= 115200 else "7E1").upper()
    if not re.fullmatch(r"[78][NEO][12]", mode):
        raise ConfigError(f"{spec.label}: mode {mode!r} is not like 8N1 or 7E1")
    if spec.transport == "serial":
        device = "/" + spec.path()
        target = device
    else:
        target = f"socket://{spec.url.split('://', 1)[1].rstrip('/')}"

    def opener() -> Any:
        return serial.serial_for_url(
            target,
            baudrate=baud,
            bytesize=int(mode[0]),
            parity=mode[1],
            stopbits=int(mode[2]),
            timeout=0.5,
        )

    meter = PushedMeter(spec.label, silent_after_s=spec.float_option("silent_s", 60.0))
    reader = DsmrReader(meter, crc_required=spec.option("crc", "required") != "optional", name=spec.label)
    SerialLine(opener, reader, clock_ms=clock_ms).start()
    return meter
