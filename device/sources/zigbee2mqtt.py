"""Zigbee metering plugs through Zigbee2MQTT: ``zigbee2mqtt/<friendly name>`` JSON over MQTT.

Documented payload followed (Zigbee2MQTT docs, "MQTT topics and messages" and the device pages'
exposes, e.g. a TS011F plug: ``power`` W, ``energy`` kWh, ``voltage`` V, ``current`` A; the
fixtures in ``tests/fixtures/meters/zigbee2mqtt/`` have this shape)::

    zigbee2mqtt/Washing machine  {"state":"ON","power":1893.2,"energy":412.37,"voltage":231,
                                  "current":8.21,"linkquality":116}

- ``energy`` kWh (the plug's cumulative register; Zigbee2MQTT sends the cached value with every
  state message) -> ``energy_wh`` × 1000; ``produced_energy`` kWh, where a device exposes it,
  -> ``energy_export_wh``; ``power``, ``voltage``, ``current``; ``power_factor`` if present.
- **Time**: the message carries no timestamp unless Zigbee2MQTT's ``advanced.last_seen`` is
  set (``ISO_8601``, ``ISO_8601_local`` or ``epoch``). With it, ``last_seen`` is the reading's
  time (within ``max_skew_s`` of receipt); without it, the time the box received the message
  is used. A plug that reports a power change every few seconds and its energy every few
  minutes gives readings whose register moves in steps; that is the device's resolution.
- A message without ``energy`` (a plug that has not reported it yet, a light) gives no reading.
- The base topic is ``zigbee2mqtt`` unless ``base=`` says otherwise; the friendly name is the
  URL's path and may contain ``/``. ``<name>/availability``, ``<name>/set`` are not read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from device.meters import MeterSource
from device.sources.clock import DEFAULT_MAX_SKEW_S, believed_ms, local_iso_ms, zone
from device.sources.document import RegisterWatch, checked_sample, decode_json, number, optional_number
from device.sources.feed import BrokerAddress, MqttFeed, PushedMeter
from device.sources.spec import MeterSpec
from device.spool import Sample
from readings.errors import ConfigError


def last_seen_ms(value: object, *, tz: Any = UTC) -> int | None:
    """Epoch ms of ``last_seen`` in any of its three formats; None when absent or unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if 0 < value < 1e14 else None  # epoch milliseconds
    return local_iso_ms(value, tz)


def parse_state(doc: dict[str, Any], *, received_ms: int, max_skew_s: float, tz: Any, source: str) -> Sample | None:
    """The sample of one state message, or None when it carries no ``energy``."""
    if doc.get("energy") is None:
        return None
    ts_ms = believed_ms(last_seen_ms(doc.get("last_seen"), tz=tz), received_ms, max_skew_s=max_skew_s, source=source)
    produced = optional_number(doc.get("produced_energy"), "produced_energy")
    return checked_sample(
        ts_ms=ts_ms,
        source=source,
        energy_wh=number(doc["energy"], "energy") * 1000.0,
        energy_export_wh=None if produced is None else produced * 1000.0,
        power_w=optional_number(doc.get("power"), "power"),
        voltage_v=optional_number(doc.get("voltage"), "voltage"),
        current_a=optional_number(doc.get("current"), "current"),
        pf=optional_number(doc.get("power_factor"), "power_factor"),
    )


class Zigbee2MqttDevice:
    """Reads one device's state topic (``handle`` is an ``MqttFeed`` handler)."""

    def __init__(self, topic: str, *, max_skew_s: float, tz: Any, name: str) -> None:
        self.topic, self.max_skew_s, self.tz, self.name = topic, max_skew_s, tz, name
        self.watch = RegisterWatch(name)

    def handle(self, topic: str, payload: bytes, received_ms: int) -> Sample | None:
        if topic != self.topic:
            return None
        doc = decode_json(payload, what=topic)
        sample = parse_state(doc, received_ms=received_ms, max_skew_s=self.max_skew_s, tz=self.tz, source=self.name)
        if sample is not None:
            self.watch.see(sample)
        return sample


def build(spec: MeterSpec, *, clock_ms: Callable[[], int], broker: Callable[[MeterSpec], BrokerAddress]) -> MeterSource:
    """The source of ``zigbee2mqtt+mqtt(s)://broker/<friendly name>``."""
    name = spec.path()
    if not name:
        raise ConfigError(f"{spec.label}: no friendly name in the URL path")
    topic = f"{spec.option('base', 'zigbee2mqtt').strip('/')}/{name}"
    device = Zigbee2MqttDevice(
        topic,
        max_skew_s=spec.float_option("max_skew_s", DEFAULT_MAX_SKEW_S),
        tz=zone(spec.options.get("tz")),
        name=spec.label,
    )
    meter = PushedMeter(spec.label, silent_after_s=spec.float_option("silent_s", 3600.0))
    MqttFeed(broker(spec), [topic], device.handle, meter, clock_ms=clock_ms).start()
    return meter
