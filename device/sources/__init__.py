"""Meter sources for the meters people already own, each a ``MeterSource`` of one family.

| family        | module                          | transports        | register(s) read                                |
|---------------|---------------------------------|-------------------|-------------------------------------------------|
| ``shelly``      | ``device.sources.shelly``       | http(s), mqtt(s)  | ``aenergy.total`` Wh, ``emdata:0`` Wh, Gen1 W·min |
| ``tasmota``     | ``device.sources.tasmota``      | mqtt(s), http(s)  | ``ENERGY.Total`` kWh                              |
| ``zigbee2mqtt`` | ``device.sources.zigbee2mqtt``  | mqtt(s)           | ``energy`` kWh                                    |
| ``emonhub``     | ``device.sources.emonhub``      | mqtt(s)           | ``E1``… Wh                                        |
| ``dsmr``        | ``device.sources.dsmr``         | serial, tcp       | OBIS 1.8.1 + 1.8.2 / 2.8.1 + 2.8.2                |
| ``sdm630``      | ``device.modbus``               | tcp, rtu          | input registers 0x0048 / 0x004A kWh               |

Each module's docstring names the documented payload it follows. What every source guarantees:
registers in Wh (converted from the device's unit), import in ``energy_wh`` and export in
``energy_export_wh`` where the device has both; ``power_w`` is import power (0 while exporting);
a device-side reset reaches the wire as reported (the consumer's register rules handle it); a
missing or malformed value, an oversized or hostile document is a ``MeterError`` with a reason
(never an exception that stops the box); sources that are pushed to (MQTT, serial) raise
``NoNewReading`` between messages and ``MeterError("timeout")`` when the device stays silent.

``open_meter`` builds the source of a ``MeterSpec`` (``device.sources.spec``: the URL form
``<family>+<transport>://…#thing=…``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from device.meters import MeterSource
from device.sources.feed import BrokerAddress
from device.sources.spec import MeterSpec, parse_meter_url
from readings.errors import ConfigError

__all__ = ["MeterSpec", "broker_address", "open_meter", "parse_meter_url"]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def broker_address(spec: MeterSpec) -> BrokerAddress:
    """The LAN broker of an ``…+mqtt(s)://user:password@host:port/…`` spec."""
    parts = urlsplit(spec.url)
    if not parts.hostname:
        raise ConfigError(f"{spec.label}: no broker host")
    tls = spec.transport == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"{spec.label}: bad port") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        ca_file=spec.options.get("ca"),
    )


def _sdm630(spec: MeterSpec) -> MeterSource:
    from device.modbus import ModbusMeter
    from device.settings import ModbusSettings

    parts = urlsplit(spec.url)
    fields: dict[str, object] = {"transport": spec.transport, "unit_id": spec.int_option("unit", 1)}
    if spec.transport == "tcp":
        fields.update(host=parts.hostname or "127.0.0.1", port=parts.port or 502)
    else:
        fields.update(serial_port="/" + spec.path(), baudrate=spec.int_option("baud", 9600))
    return ModbusMeter.from_settings(ModbusSettings.model_validate(fields))


def open_meter(
    spec: MeterSpec, *, default_tz: str | None = None, clock_ms: Callable[[], int] = _wall_ms
) -> MeterSource:
    """The source of ``spec``; ``default_tz`` is the box's zone for devices that stamp local time.

    Push sources connect (or open their port) in the background and report what fails through
    ``read``; a spec that cannot work at all is a ``ConfigError`` here.
    """
    if default_tz and "tz" not in spec.options:
        spec = MeterSpec(spec.family, spec.transport, spec.url, spec.thing, {**spec.options, "tz": default_tz})
    pushed = spec.transport.startswith("mqtt")
    if pushed and spec.family in ("zigbee2mqtt", "tasmota", "shelly") and any(c in spec.path() for c in "+#"):
        raise ConfigError(f"{spec.label}: MQTT wildcards (+, #) in a topic name")
    if spec.family == "shelly":
        from device.sources import shelly

        return shelly.build(spec, clock_ms=clock_ms, broker=broker_address)
    if spec.family == "tasmota":
        from device.sources import tasmota

        return tasmota.build(spec, clock_ms=clock_ms, broker=broker_address)
    if spec.family == "zigbee2mqtt":
        from device.sources import zigbee2mqtt

        return zigbee2mqtt.build(spec, clock_ms=clock_ms, broker=broker_address)
    if spec.family == "emonhub":
        from device.sources import emonhub

        return emonhub.build(spec, clock_ms=clock_ms, broker=broker_address)
    if spec.family == "dsmr":
        from device.sources import dsmr

        return dsmr.build(spec, clock_ms=clock_ms)
    if spec.family == "sdm630":
        return _sdm630(spec)
    raise ConfigError(f"no source for meter family {spec.family!r}")
