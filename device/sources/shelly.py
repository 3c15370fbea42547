"""Shelly meters and metering relays: Gen2+ RPC over HTTP or MQTT, Gen1 ``/status`` over HTTP.

Documented payloads followed (Shelly API docs, shelly-api-docs.shelly.cloud; the fixtures in
``tests/fixtures/meters/shelly/`` are documents of those shapes):

- Gen2+ ``GET /rpc/Shelly.GetStatus`` (one object, a key per component ``<type>:<id>``):
  - ``switch:N`` / ``pm1:N`` (Plus 1PM, Plus Plug S, PM Mini): ``aenergy.total`` Wh, the
    cumulative import register; ``ret_aenergy.total`` Wh (returned energy, newer firmware)
    as export; ``apower`` W, ``voltage`` V, ``current`` A, ``pf``;
  - ``emdata:0`` + ``em:0`` (Pro 3EM, triphase profile): ``emdata:0.total_act`` and
    ``total_act_ret`` Wh (import and export of all phases), ``em:0.total_act_power`` W
    (signed: negative while exporting), ``a_voltage`` V, ``total_current`` A;
  - ``em1data:N`` + ``em1:N`` (Pro EM, EM Gen3, Pro 3EM monophase): ``total_act_energy`` and
    ``total_act_ret_energy`` Wh, ``act_power`` W, ``voltage``, ``current``, ``pf``;
  - ``sys.uptime`` s, to recognise a reboot.
  A document with several metering components is read in that order; ``channel`` (default 0)
  picks the ``N``.
- Gen1 ``GET /status``: ``meters[N]`` (Shelly 1PM, Plug S) whose ``total`` is in
  **watt-minutes** (÷ 60 → Wh) and ``power`` W; ``emeters[N]`` (Shelly EM, 3EM) whose
  ``total`` / ``total_returned`` are in **Wh**, with ``power``, ``voltage``, ``current``,
  ``pf``. Without ``channel`` a 3EM's three ``emeters`` are summed (the house's total), the
  voltage being phase A's. A meter with ``is_valid: false`` is garbage.
- Gen2+ over MQTT (``<prefix>`` = the device's MQTT topic prefix, its id by default):
  ``<prefix>/status/<component>`` carries one component's full status, and
  ``<prefix>/events/rpc`` the RPC notifications ``NotifyStatus`` (only what changed, with
  ``params.ts`` in epoch seconds) and ``NotifyFullStatus``. The source merges them into one
  GetStatus-shaped document and reads it like the HTTP one; ``params.ts`` is the reading's
  time where present, else the time of receipt.

Resets: ``aenergy.total`` of a relay restarts at 0 when the device reboots (``sys.uptime``
restarts). The source publishes the register as the device reports it: the consumer's register
rules take the decrease as a reset, and the thing and its ``seq`` stay the same (the spool
numbers readings, not the device). The reboot is logged (``meter_rebooted``).

Not read: Gen2 digest authentication (an open device, or a Gen1 password over HTTP Basic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog

from device.meters import MeterError, MeterSource
from device.sources.document import RegisterWatch, checked_sample, decode_json, member, number, optional_number
from device.sources.feed import BrokerAddress, MqttFeed, PushedMeter
from device.sources.http import get_json
from device.sources.spec import MeterSpec
from device.spool import Sample
from readings.errors import ConfigError

log = structlog.get_logger("device.sources.shelly")

WH_PER_WATT_MINUTE = 1.0 / 60.0
_KEPT_COMPONENTS = ("sys", "switch:", "pm1:", "em:", "emdata:", "em1:", "em1data:")
"""Components merged from MQTT; anything else is ignored, so the merged document stays small."""


def _gen2_component(doc: dict[str, Any], channel: int) -> tuple[str, dict[str, float | None]]:
    """(component read, its values) of a GetStatus document; ``MeterError`` without a meter."""
    for kind in ("switch", "pm1"):
        comp = doc.get(f"{kind}:{channel}")
        if isinstance(comp, dict) and "aenergy" in comp:
            where = f"{kind}:{channel}"
            return where, {
                "energy_wh": number(member(comp, "aenergy", "total"), f"{where}.aenergy.total"),
                "energy_export_wh": optional_number(member(comp, "ret_aenergy", "total"), f"{where}.ret_aenergy.total"),
                "power_w": optional_number(comp.get("apower"), f"{where}.apower"),
                "voltage_v": optional_number(comp.get("voltage"), f"{where}.voltage"),
                "current_a": optional_number(comp.get("current"), f"{where}.current"),
                "pf": optional_number(comp.get("pf"), f"{where}.pf"),
            }
    data, em = doc.get("emdata:0"), doc.get("em:0")
    if isinstance(data, dict) and "total_act" in data:
        em = em if isinstance(em, dict) else {}
        return "emdata:0", {
            "energy_wh": number(data.get("total_act"), "emdata:0.total_act"),
            "energy_export_wh": optional_number(data.get("total_act_ret"), "emdata:0.total_act_ret"),
            "power_w": optional_number(em.get("total_act_power"), "em:0.total_act_power"),
            "voltage_v": optional_number(em.get("a_voltage"), "em:0.a_voltage"),
            "current_a": optional_number(em.get("total_current"), "em:0.total_current"),
            "pf": None,
        }
    data, em = doc.get(f"em1data:{channel}"), doc.get(f"em1:{channel}")
    if isinstance(data, dict) and "total_act_energy" in data:
        where = f"em1:{channel}"
        em = em if isinstance(em, dict) else {}
        return f"em1data:{channel}", {
            "energy_wh": number(data.get("total_act_energy"), f"em1data:{channel}.total_act_energy"),
            "energy_export_wh": optional_number(
                data.get("total_act_ret_energy"), f"em1data:{channel}.total_act_ret_energy"
            ),
            "power_w": optional_number(em.get("act_power"), f"{where}.act_power"),
            "voltage_v": optional_number(em.get("voltage"), f"{where}.voltage"),
            "current_a": optional_number(em.get("current"), f"{where}.current"),
            "pf": optional_number(em.get("pf"), f"{where}.pf"),
        }
    raise MeterError("garbage", f"no metering component for channel {channel} (switch, pm1, emdata, em1data)")


def parse_gen2(doc: dict[str, Any], *, channel: int, ts_ms: int, source: str = "shelly") -> Sample:
    """The sample of a Gen2+ ``Shelly.GetStatus`` document (module docstring)."""
    _, values = _gen2_component(doc, channel)
    return checked_sample(ts_ms=ts_ms, source=source, **values)  # type: ignore[arg-type]


def parse_gen1(doc: dict[str, Any], *, channel: int | None, ts_ms: int, source: str = "shelly") -> Sample:
    """The sample of a Gen1 ``/status`` document (module docstring)."""
    emeters = doc.get("emeters")
    if isinstance(emeters, list) and emeters:
        chosen = emeters if channel is None else emeters[channel : channel + 1]
        if not chosen or not all(isinstance(m, dict) for m in chosen):
            raise MeterError("garbage", f"no emeters[{channel}]")
        for i, m in enumerate(chosen):
            if m.get("is_valid") is False:
                raise MeterError("garbage", f"emeters[{i}] is_valid false")
        first = chosen[0]
        returned = [optional_number(m.get("total_returned"), "emeters.total_returned") for m in chosen]
        return checked_sample(
            ts_ms=ts_ms,
            source=source,
            energy_wh=sum(number(m.get("total"), "emeters.total") for m in chosen),
            energy_export_wh=None if None in returned else sum(r or 0.0 for r in returned),
            power_w=sum(number(m.get("power"), "emeters.power") for m in chosen),
            voltage_v=optional_number(first.get("voltage"), "emeters.voltage"),
            current_a=optional_number(first.get("current"), "emeters.current") if len(chosen) == 1 else None,
            pf=optional_number(first.get("pf"), "emeters.pf") if len(chosen) == 1 else None,
        )
    meters = doc.get("meters")
    index = channel or 0
    if not isinstance(meters, list) or len(meters) <= index or not isinstance(meters[index], dict):
        raise MeterError("garbage", f"no meters[{index}] or emeters in the /status document")
    meter = meters[index]
    if meter.get("is_valid") is False:
        raise MeterError("garbage", f"meters[{index}] is_valid false")
    return checked_sample(
        ts_ms=ts_ms,
        source=source,
        energy_wh=number(meter.get("total"), f"meters[{index}].total") * WH_PER_WATT_MINUTE,
        power_w=optional_number(meter.get("power"), f"meters[{index}].power"),
    )


class ShellyHttpMeter:
    """Polls ``/rpc/Shelly.GetStatus`` (Gen2+) or ``/status`` (Gen1) once per read."""

    def __init__(
        self,
        base_url: str,
        *,
        channel: int | None = None,
        generation: int | None = None,
        timeout_s: float = 3.0,
        name: str = "shelly",
        fetch: Callable[..., dict[str, Any]] = get_json,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.channel, self.generation, self.timeout_s, self.name = channel, generation, timeout_s, name
        self.fetch = fetch
        self.watch = RegisterWatch(name)

    def _generation(self) -> int:
        if self.generation is None:
            # GET /shelly answers on every generation; only Gen2+ carry "gen".
            info = self.fetch(f"{self.base_url}/shelly", timeout_s=self.timeout_s)
            gen = info.get("gen")
            self.generation = int(gen) if isinstance(gen, int) and not isinstance(gen, bool) and gen >= 2 else 1
            log.info("shelly_generation", meter=self.name, gen=self.generation)
        return self.generation

    def read(self, now_ms: int) -> Sample:
        if self._generation() >= 2:
            doc = self.fetch(f"{self.base_url}/rpc/Shelly.GetStatus", timeout_s=self.timeout_s)
            sample = parse_gen2(doc, channel=self.channel or 0, ts_ms=now_ms, source=self.name)
            self.watch.see(sample, uptime=member(doc, "sys", "uptime"))
        else:
            doc = self.fetch(f"{self.base_url}/status", timeout_s=self.timeout_s)
            sample = parse_gen1(doc, channel=self.channel, ts_ms=now_ms, source=self.name)
            self.watch.see(sample, uptime=doc.get("uptime"))
        return sample

    def close(self) -> None:
        return None


class ShellyMqttState:
    """Merges ``<prefix>/status/<component>`` and ``NotifyStatus`` into one GetStatus document."""

    def __init__(self, prefix: str, *, channel: int, name: str = "shelly") -> None:
        self.prefix, self.channel, self.name = prefix.strip("/"), channel, name
        self.doc: dict[str, Any] = {}
        self.watch = RegisterWatch(name)

    @property
    def topics(self) -> list[str]:
        return [f"{self.prefix}/status/+", f"{self.prefix}/events/rpc"]

    def _merge(self, component: str, status: object) -> bool:
        if not isinstance(status, dict) or not component.startswith(_KEPT_COMPONENTS):
            return False
        current = self.doc.setdefault(component, {})
        for key, value in status.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}  # a partial aenergy keeps its total
            else:
                current[key] = value
        return component != "sys"

    def handle(self, topic: str, payload: bytes, received_ms: int) -> Sample | None:
        ts_ms = received_ms
        if topic == f"{self.prefix}/events/rpc":
            message = decode_json(payload, what=topic)
            if message.get("method") not in ("NotifyStatus", "NotifyFullStatus"):
                return None  # NotifyEvent and the like carry no values
            params = message.get("params")
            if not isinstance(params, dict):
                raise MeterError("garbage", f"{topic}: params is not an object")
            stamp = params.get("ts")
            if stamp is not None:
                ts_ms = round(number(stamp, "params.ts") * 1000)
            touched = [self._merge(key, value) for key, value in params.items() if key != "ts"]
        elif topic.startswith(f"{self.prefix}/status/"):
            component = topic[len(self.prefix) + len("/status/") :]
            try:
                status = json.loads(payload) if len(payload) else None
            except (ValueError, RecursionError) as exc:
                raise MeterError("garbage", f"{topic}: not JSON") from exc
            touched = [self._merge(component, status)]
        else:
            return None
        if not any(touched):
            return None
        try:
            sample = parse_gen2(self.doc, channel=self.channel, ts_ms=ts_ms, source=self.name)
        except MeterError:
            if not any(k.startswith(("switch:", "pm1:", "emdata:", "em1data:")) for k in self.doc):
                return None  # power arrived before the register did: wait for it
            raise
        self.watch.see(sample, uptime=member(self.doc, "sys", "uptime"))
        return sample


def build(spec: MeterSpec, *, clock_ms: Callable[[], int], broker: Callable[[MeterSpec], BrokerAddress]) -> MeterSource:
    """The source of a ``shelly+http(s)://host`` or ``shelly+mqtt(s)://broker/<prefix>`` spec."""
    channel_text = spec.options.get("channel")
    channel = None if channel_text is None else spec.int_option("channel", 0)
    if spec.transport in ("http", "https"):
        gen_text = spec.options.get("gen")
        return ShellyHttpMeter(
            spec.url,
            channel=channel,
            generation=None if gen_text is None else spec.int_option("gen", 2),
            timeout_s=spec.float_option("timeout_s", 3.0),
            name=spec.label,
        )
    prefix = spec.path()
    if not prefix:
        raise ConfigError(f"{spec.label}: no topic prefix in the URL path")
    meter = PushedMeter(spec.label, silent_after_s=spec.float_option("silent_s", 900.0))
    state = ShellyMqttState(prefix, channel=channel or 0, name=spec.label)
    MqttFeed(broker(spec), state.topics, state.handle, meter, clock_ms=clock_ms).start()
    return meter
