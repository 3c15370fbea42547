"""Tasmota power-monitoring plugs and meters: ``tele/<topic>/SENSOR`` over MQTT, ``Status 8`` over HTTP.

Documented payloads followed (Tasmota docs, "Power Monitoring" and "Commands: Status"; the
fixtures in ``tests/fixtures/meters/tasmota/`` have these shapes)::

    tele/<topic>/SENSOR   {"Time":"2022-01-11T21:57:38","ENERGY":{"TotalStartTime":"…",
                           "Total":3.705,"Yesterday":0.028,"Today":0.026,"Period":1,"Power":5,
                           "ApparentPower":5,"ReactivePower":0,"Factor":1.00,"Voltage":233,
                           "Current":0.021}}
    GET /cm?cmnd=Status%208   {"StatusSNS":{"Time":"…","ENERGY":{…same…}}}

- ``ENERGY.Total`` kWh (cumulative import since ``TotalStartTime``) -> ``energy_wh`` × 1000;
  ``ENERGY.ExportActive`` kWh (meters that measure export) -> ``energy_export_wh``;
  ``Power`` W, ``Voltage`` V, ``Current`` A, ``Factor``.
- With ``SetOption129 1`` (or on multi-channel devices) values are arrays, one per channel.
  ``channel=N`` (1-based, as Tasmota's ``Power<N>``) picks one; without it the channels'
  ``Total``, ``ExportActive`` and ``Power`` are summed and the per-channel voltage, current
  and factor are left out.
- ``Time`` is the device's local time without an offset (its own ``Timezone``), unless
  ``SetOption52 1`` adds one. The source reads an offset-less time in the zone ``tz=``
  (default: the box's zone), and falls back to the time of receipt when the stamp is more than
  ``max_skew_s`` away from it (a plug without NTP says 1970). Over HTTP the reading's time is
  the box's read time.
- Quirk: ``Total`` restarts at 0 after a firmware flash with erase (or ``EnergyReset3 0``).
  The register goes out as reported (the consumer's register rules see a reset) and
  ``meter_register_decreased`` is logged.

Messages on other topics (``tele/<topic>/STATE``, ``LWT``) carry no register and are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from device.meters import MeterError, MeterSource
from device.sources.clock import DEFAULT_MAX_SKEW_S, believed_ms, local_iso_ms, zone
from device.sources.document import RegisterWatch, checked_sample, decode_json, number
from device.sources.feed import BrokerAddress, MqttFeed, PushedMeter
from device.sources.http import get_json
from device.sources.spec import MeterSpec
from device.spool import Sample
from readings.errors import ConfigError

STATUS_8_PATH = "/cm?cmnd=Status%208"


def _channel_values(value: object, what: str, channel: int | None) -> tuple[float | None, bool]:
    """(the chosen or summed value, whether it was an array of several channels)."""
    if value is None:
        return None, False
    if isinstance(value, list):
        if not value or len(value) > 64:
            raise MeterError("garbage", f"{what} is an array of {len(value)}")
        if channel is not None:
            if not 1 <= channel <= len(value):
                raise MeterError("garbage", f"{what} has {len(value)} channels, no channel {channel}")
            return number(value[channel - 1], f"{what}[{channel}]"), False
        return sum(number(v, f"{what}[{i + 1}]") for i, v in enumerate(value)), len(value) > 1
    return number(value, what), False


def parse_energy(energy: object, *, channel: int | None, ts_ms: int, source: str = "tasmota") -> Sample:
    """The sample of an ``ENERGY`` object (module docstring)."""
    if not isinstance(energy, dict):
        raise MeterError("garbage", "ENERGY is missing or not an object")
    total_kwh, summed = _channel_values(energy.get("Total"), "ENERGY.Total", channel)
    if total_kwh is None:
        raise MeterError("garbage", "ENERGY.Total is missing")
    export_kwh, _ = _channel_values(energy.get("ExportActive"), "ENERGY.ExportActive", channel)
    power_w, _ = _channel_values(energy.get("Power"), "ENERGY.Power", channel)
    per_channel: dict[str, float | None] = {}
    for key, name in (("Voltage", "voltage_v"), ("Current", "current_a"), ("Factor", "pf")):
        value, several = _channel_values(energy.get(key), f"ENERGY.{key}", channel)
        per_channel[name] = None if summed or several else value
    return checked_sample(
        ts_ms=ts_ms,
        source=source,
        energy_wh=total_kwh * 1000.0,
        energy_export_wh=None if export_kwh is None else export_kwh * 1000.0,
        power_w=power_w,
        **per_channel,
    )


class TasmotaSensor:
    """Reads ``tele/<topic>/SENSOR`` messages (``handle`` is an ``MqttFeed`` handler)."""

    def __init__(
        self,
        sensor_topic: str,
        *,
        channel: int | None,
        tz: tzinfo,
        max_skew_s: float = DEFAULT_MAX_SKEW_S,
        name: str = "tasmota",
    ) -> None:
        self.sensor_topic, self.channel, self.tz, self.max_skew_s, self.name = (
            sensor_topic,
            channel,
            tz,
            max_skew_s,
            name,
        )
        self.watch = RegisterWatch(name)

    def handle(self, topic: str, payload: bytes, received_ms: int) -> Sample | None:
        if topic != self.sensor_topic:
            return None
        doc = decode_json(payload, what=topic)
        if "ENERGY" not in doc:
            return None  # a SENSOR message of a device with other sensors only
        ts_ms = believed_ms(
            local_iso_ms(doc.get("Time"), self.tz), received_ms, max_skew_s=self.max_skew_s, source=self.name
        )
        sample = parse_energy(doc["ENERGY"], channel=self.channel, ts_ms=ts_ms, source=self.name)
        self.watch.see(sample)
        return sample


class TasmotaHttpMeter:
    """Polls ``Status 8`` once per read; the reading's time is the box's read time."""

    def __init__(
        self,
        url: str,
        *,
        channel: int | None,
        timeout_s: float = 3.0,
        name: str = "tasmota",
        fetch: Callable[..., dict[str, Any]] = get_json,
    ) -> None:
        self.url, self.channel, self.timeout_s, self.name, self.fetch = url, channel, timeout_s, name, fetch
        self.watch = RegisterWatch(name)

    def read(self, now_ms: int) -> Sample:
        doc = self.fetch(self.url, timeout_s=self.timeout_s)
        status = doc.get("StatusSNS")
        if not isinstance(status, dict):
            raise MeterError("garbage", f"{self.name}: no StatusSNS in the Status 8 answer")
        sample = parse_energy(status.get("ENERGY"), channel=self.channel, ts_ms=now_ms, source=self.name)
        self.watch.see(sample)
        return sample

    def close(self) -> None:
        return None


def status_url(base: str) -> str:
    """``Status 8`` of ``base``; Tasmota takes its web password as ``user``/``password`` parameters."""
    parts = urlsplit(base)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "cmnd=Status%208"
    if parts.username is not None:
        user, password = quote(unquote(parts.username), safe=""), quote(unquote(parts.password or ""), safe="")
        query += f"&user={user}&password={password}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/cm", query, ""))


def build(spec: MeterSpec, *, clock_ms: Callable[[], int], broker: Callable[[MeterSpec], BrokerAddress]) -> MeterSource:
    """The source of ``tasmota+http(s)://host`` or ``tasmota+mqtt(s)://broker/<topic>``."""
    channel = None if "channel" not in spec.options else spec.int_option("channel", 1)
    if spec.transport in ("http", "https"):
        return TasmotaHttpMeter(
            status_url(spec.url), channel=channel, timeout_s=spec.float_option("timeout_s", 3.0), name=spec.label
        )
    topic = spec.path()
    if not topic:
        raise ConfigError(f"{spec.label}: no Tasmota topic in the URL path")
    sensor_topic = spec.option("sensor_topic", f"{spec.option('prefix', 'tele')}/{topic}/SENSOR")
    sensor = TasmotaSensor(
        sensor_topic,
        channel=channel,
        tz=zone(spec.options.get("tz")),
        max_skew_s=spec.float_option("max_skew_s", DEFAULT_MAX_SKEW_S),
        name=spec.label,
    )
    meter = PushedMeter(spec.label, silent_after_s=spec.float_option("silent_s", 900.0))
    MqttFeed(broker(spec), [sensor_topic], sensor.handle, meter, clock_ms=clock_ms).start()
    return meter
