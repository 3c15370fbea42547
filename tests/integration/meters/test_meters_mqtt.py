"""Tasmota, Zigbee2MQTT, emonhub and Shelly sources subscribed to a real Mosquitto on the 'LAN'."""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from device.meters import MeterError, NoNewReading
from device.sources import open_meter, parse_meter_url
from devstack.stack import wait_for

pytestmark = pytest.mark.integration
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def next_sample(meter, timeout_s: float = 10.0):
    """The next reading the meter has (waits for the broker to deliver, fails after timeout_s)."""
    found: list = []

    def ready() -> bool:
        try:
            found.append(meter.read(now_ms()))
        except NoNewReading:
            return False
        return True

    assert wait_for(ready, timeout_s, 0.02), "no reading arrived"
    return found[0]


def next_failure(meter, timeout_s: float = 10.0) -> MeterError:
    found: list = []

    def failed() -> bool:
        try:
            meter.read(now_ms())
        except NoNewReading:
            return False
        except MeterError as exc:
            found.append(exc)
            return True
        raise AssertionError("a reading where a failure was expected")

    assert wait_for(failed, timeout_s, 0.02), "no failure arrived"
    return found[0]


def subscribed(meter) -> None:
    # the feed connects in the background; the broker drops what is published before it subscribes
    assert meter.transport.subscribed.wait(10), "the source did not subscribe on the LAN broker"


def local_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, AMSTERDAM).strftime("%Y-%m-%dT%H:%M:%S")


def test_tasmota_sensor_messages_local_time_reset_and_garbage(lan_broker, lan_publish) -> None:
    url = f"tasmota+mqtt://127.0.0.1:{lan_broker.port}/plug-kitchen#thing=meter-tasmota&tz=Europe/Amsterdam"
    meter = open_meter(parse_meter_url(url))
    try:
        subscribed(meter)
        stamp = now_ms() // 1000 * 1000
        sensor = {"Time": local_time(stamp), "ENERGY": {"Total": 3.705, "Power": 5, "Voltage": 233, "Current": 0.021}}
        lan_publish("tele/plug-kitchen/STATE", b'{"POWER":"ON"}')  # no register: ignored
        lan_publish("tele/plug-kitchen/SENSOR", json.dumps(sensor).encode())
        first = next_sample(meter)
        assert (first.energy_wh, first.power_w, first.ts_ms) == (3705.0, 5.0, stamp)
        with pytest.raises(NoNewReading):
            meter.read(now_ms())
        # a hostile message: over the size bound, then not JSON
        lan_publish("tele/plug-kitchen/SENSOR", b"{" * 100_000)
        assert next_failure(meter).reason == "garbage"
        # the flash: Total starts again at 0, and is published as such
        sensor = {"Time": local_time(stamp + 2000), "ENERGY": {"Total": 0.0, "Power": 5}}
        lan_publish("tele/plug-kitchen/SENSOR", json.dumps(sensor).encode())
        assert next_sample(meter).energy_wh == 0.0
    finally:
        meter.close()


def test_zigbee2mqtt_plug_uses_the_receipt_time(lan_broker, lan_publish, fixture_bytes) -> None:
    meter = open_meter(parse_meter_url(f"z2m+mqtt://127.0.0.1:{lan_broker.port}/Washing%20machine#silent_s=60"))
    try:
        subscribed(meter)
        before = now_ms()
        lan_publish("zigbee2mqtt/Washing machine", fixture_bytes("zigbee2mqtt/ts011f_plug.json"))
        sample = next_sample(meter)
        assert sample.energy_wh == 412370.0 and before <= sample.ts_ms <= now_ms()
        lan_publish("zigbee2mqtt/Washing machine/availability", b'{"state":"online"}')
        lan_publish("zigbee2mqtt/Washing machine", fixture_bytes("zigbee2mqtt/light_without_energy.json"))
        # silent for longer than silent_s (the clock passed to read is the box's): a timeout
        with pytest.raises(MeterError) as err:
            meter.read(now_ms() + 61_000)
        assert err.value.reason == "timeout"
        # and it comes back
        lan_publish("zigbee2mqtt/Washing machine", fixture_bytes("zigbee2mqtt/ts011f_plug.json"))
        assert next_sample(meter).energy_wh == 412370.0
    finally:
        meter.close()


def test_emonhub_plain_and_json_forms(lan_broker, lan_publish, fixture_bytes) -> None:
    meter = open_meter(parse_meter_url(f"emonhub+mqtt://127.0.0.1:{lan_broker.port}/emontx4#energy=E3&power=P3"))
    try:
        subscribed(meter)
        for name, value in (("V1", b"238.7"), ("P1", b"312"), ("P3", b"1204"), ("E1", b"1048576"), ("E3", b"733210")):
            lan_publish(f"emon/emontx4/{name}", value)
        plain = next_sample(meter)
        assert (plain.energy_wh, plain.power_w, plain.voltage_v) == (733210.0, 1204.0, 238.7)
        doc = json.loads(fixture_bytes("emonhub/emontx4_json.json"))
        doc["time"] = now_ms() / 1000 + 1  # a second after the plain reading, as a real frame is
        doc["E3"] = 733215
        lan_publish("emon/emontx4", json.dumps(doc).encode())
        assert next_sample(meter).energy_wh == 733215.0
    finally:
        meter.close()


def test_shelly_over_mqtt_status_and_notify_status(lan_broker, lan_publish, fixture_bytes) -> None:
    prefix = "shellyplus1pm-a8032ab12345"
    meter = open_meter(parse_meter_url(f"shelly+mqtt://127.0.0.1:{lan_broker.port}/{prefix}#thing=meter-shelly"))
    try:
        subscribed(meter)
        lan_publish(f"{prefix}/status/switch:0", fixture_bytes("shelly/mqtt_status_switch0.json"))
        assert next_sample(meter).energy_wh == 18302.114
        notify = json.loads(fixture_bytes("shelly/mqtt_notifystatus.json"))
        notify["params"]["ts"] = now_ms() / 1000 + 1  # a later instant than the status before it
        lan_publish(f"{prefix}/events/rpc", json.dumps(notify).encode())
        sample = next_sample(meter)
        assert (sample.energy_wh, sample.power_w) == (18312.345, 611.2)
    finally:
        meter.close()
