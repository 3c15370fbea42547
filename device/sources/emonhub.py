"""OpenEnergyMonitor nodes (emonTx, emonPi) through emonhub's MQTT interfacer.

Documented payloads followed (emonhub ``src/interfacers/EmonHubMqttInterfacer.py`` and its
``emonhub.conf``; fixtures in ``tests/fixtures/meters/emonhub/``):

- "nodevar" format (``nodevar_format_enable = 1``, base topic ``emon/``): one message per input,
  ``emon/<node>/<input>`` with the value as plain text (``str(value)``), e.g.
  ``emon/emontx4/P1`` ``231.4``, ``emon/emontx4/E1`` ``1048576``;
- JSON format (``node_JSON_enable = 1``): ``<node_JSON_basetopic><node>`` with
  ``{"<input>": value, …, "time": <epoch seconds>}``.

Inputs: the emonTx4 / emonPi2 firmware sends per CT channel ``P<n>`` (W) and ``E<n>`` (Wh,
cumulative, kept across power cycles in EEPROM), and ``V1`` (V). ``energy=E1`` (default),
``power=P1``, ``voltage=V1`` name the inputs of this meter; ``export=E2`` names an export
register if a channel measures one (off by default).

A reading is made when the energy input arrives: in the nodevar format with the power and
voltage received last (emonhub publishes a frame's inputs in order, power before energy) and the
time of receipt (the format has no timestamp); in the JSON format with the ``time`` of the
message (within ``max_skew_s`` of receipt). Non-numeric values, ``nan``, text over 64 bytes are
garbage.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from device.meters import MeterError, MeterSource
from device.sources.clock import DEFAULT_MAX_SKEW_S, believed_ms
from device.sources.document import RegisterWatch, checked_sample, decode_json, number
from device.sources.feed import BrokerAddress, MqttFeed, PushedMeter
from device.sources.spec import MeterSpec
from device.spool import Sample
from readings.errors import ConfigError

MAX_VALUE_BYTES = 64


def plain_value(payload: bytes, what: str) -> float:
    """The number in a nodevar payload (``b"231.4"``)."""
    if len(payload) > MAX_VALUE_BYTES:
        raise MeterError("garbage", f"{what}: {len(payload)} bytes for one value")
    try:
        value = float(payload.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise MeterError("garbage", f"{what}: {payload[:32]!r} is not a number") from exc
    if not math.isfinite(value):
        raise MeterError("garbage", f"{what}: {value}")
    return value


class EmonhubNode:
    """One node's inputs (``handle`` is an ``MqttFeed`` handler for both formats)."""

    def __init__(
        self,
        base: str,
        node: str,
        *,
        energy: str = "E1",
        power: str | None = "P1",
        voltage: str | None = "V1",
        export: str | None = None,
        max_skew_s: float = DEFAULT_MAX_SKEW_S,
        name: str = "emonhub",
    ) -> None:
        self.prefix = f"{base.strip('/')}/{node}"
        self.energy, self.power, self.voltage, self.export = energy, power, voltage, export
        self.max_skew_s, self.name = max_skew_s, name
        self.latest: dict[str, float] = {}
        self.watch = RegisterWatch(name)

    @property
    def topics(self) -> list[str]:
        return [self.prefix, f"{self.prefix}/+"]

    def _sample(self, values: dict[str, float], ts_ms: int) -> Sample:
        sample = checked_sample(
            ts_ms=ts_ms,
            source=self.name,
            energy_wh=values[self.energy],
            energy_export_wh=values.get(self.export) if self.export else None,
            power_w=values.get(self.power) if self.power else None,
            voltage_v=values.get(self.voltage) if self.voltage else None,
        )
        self.watch.see(sample)
        return sample

    def handle(self, topic: str, payload: bytes, received_ms: int) -> Sample | None:
        if topic == self.prefix:
            doc = decode_json(payload, what=topic)
            if self.energy not in doc:
                return None
            values = {
                key: number(doc[key], f"{topic}.{key}")
                for key in (self.energy, self.power, self.voltage, self.export)
                if key and doc.get(key) is not None
            }
            stamp = doc.get("time")
            device_ms = None if stamp is None else round(number(stamp, f"{topic}.time") * 1000)
            ts_ms = believed_ms(device_ms, received_ms, max_skew_s=self.max_skew_s, source=self.name)
            return self._sample(values, ts_ms)
        if not topic.startswith(self.prefix + "/"):
            return None
        name = topic[len(self.prefix) + 1 :]
        if name not in (self.energy, self.power, self.voltage, self.export):
            return None
        self.latest[name] = plain_value(payload, topic)
        if name != self.energy:
            return None
        return self._sample(self.latest, received_ms)


def build(spec: MeterSpec, *, clock_ms: Callable[[], int], broker: Callable[[MeterSpec], BrokerAddress]) -> MeterSource:
    """The source of ``emonhub+mqtt(s)://broker/<node>``."""
    node = spec.path()
    if not node or "/" in node or "+" in node or "#" in node:
        raise ConfigError(f"{spec.label}: the URL path must be one emonhub node name")
    state = EmonhubNode(
        spec.option("base", "emon"),
        node,
        energy=spec.option("energy", "E1"),
        power=spec.option("power", "P1") or None,
        voltage=spec.option("voltage", "V1") or None,
        export=spec.options.get("export") or None,
        max_skew_s=spec.float_option("max_skew_s", DEFAULT_MAX_SKEW_S),
        name=spec.label,
    )
    meter = PushedMeter(spec.label, silent_after_s=spec.float_option("silent_s", 300.0))
    MqttFeed(broker(spec), state.topics, state.handle, meter, clock_ms=clock_ms).start()
    return meter
