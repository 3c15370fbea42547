"""Meter URLs, one thing per meter, the pushed-meter contract, and hostile documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from device.cli import _meter_overrides, device
from device.meters import MeterError, NoNewReading
from device.runtime import meter_settings
from device.settings import load_settings
from device.sources import dsmr, emonhub, open_meter, parse_meter_url, shelly, tasmota, zigbee2mqtt
from device.sources.document import decode_json
from device.sources.feed import PushedMeter
from device.spool import Sample
from readings.errors import ConfigError


def test_meter_url_family_transport_address_and_fragment() -> None:
    spec = parse_meter_url("tasmota+mqtt://u:p%40w@broker.lan:1884/plug-kitchen#thing=box-7&tz=Europe/Amsterdam")
    assert (spec.family, spec.transport, spec.thing, spec.options) == (
        "tasmota",
        "mqtt",
        "box-7",
        {"tz": "Europe/Amsterdam"},
    )
    assert spec.url == "mqtt://u:p%40w@broker.lan:1884/plug-kitchen" and spec.path() == "plug-kitchen"
    assert spec.label == "tasmota+mqtt://broker.lan:1884/plug-kitchen"  # no credentials in logs
    assert parse_meter_url("z2m+mqtt://b/Washing%20machine").path() == "Washing machine"
    assert parse_meter_url("dsmr+serial:///dev/ttyUSB0").path() == "dev/ttyUSB0"
    assert parse_meter_url("shelly+http://10.0.0.5", thing="box-9", options={"channel": 1}).options == {"channel": "1"}


@pytest.mark.parametrize(
    "url,why",
    [
        ("http://10.0.0.5", r"expected <family>\+<transport>"),
        ("nest+http://10.0.0.5", "unknown family"),
        ("dsmr+http://10.0.0.5", "read over serial, tcp"),
        ("shelly+http://10.0.0.5#thing=box 7", "not a thing name"),
        ("shelly+http://", "no address"),
    ],
)
def test_bad_meter_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_meter_url(url)


def test_wildcards_in_a_topic_are_refused() -> None:
    with pytest.raises(ConfigError, match="wildcards"):
        open_meter(parse_meter_url("zigbee2mqtt+mqtt://127.0.0.1/plugs/+"))


def test_settings_file_meters_each_with_their_thing_and_spool(tmp_path: Path) -> None:
    path = tmp_path / "meters.toml"
    path.write_text(
        'device_id = "box-0001"\ntimezone = "Europe/Amsterdam"\nspool_path = "/var/lib/ws/box.db"\n'
        '[[meters]]\nurl = "shelly+http://10.0.0.5"\nthing = "box-7"\nchannel = 1\n'
        '[[meters]]\nurl = "dsmr+serial:///dev/ttyUSB0#thing=box-8"\n'
        '[[meters]]\nurl = "tasmota+http://10.0.0.6"\n'
    )
    settings = load_settings(path)
    boxes = meter_settings(settings)
    assert [(s.device_id, str(s.resolved_spool_path), spec.family) for s, spec in boxes] == [
        ("box-7", "/var/lib/ws/box-7.db", "shelly"),
        ("box-8", "/var/lib/ws/box-8.db", "dsmr"),
        ("box-0001", "/var/lib/ws/box-0001.db", "tasmota"),
    ]
    assert boxes[0][1].options == {"channel": "1"} and settings.timezone == "Europe/Amsterdam"


def test_two_meters_cannot_share_a_thing() -> None:
    settings = load_settings(meters=[{"url": "shelly+http://a"}, {"url": "tasmota+http://b"}])
    with pytest.raises(ConfigError, match="box-0001 named more than once"):
        meter_settings(settings)


def test_meter_option_keeps_the_one_meter_forms() -> None:
    assert _meter_overrides(()) == {}
    assert _meter_overrides(("modbus",)) == {"meter": "modbus"}
    assert load_settings(**_meter_overrides(("simulated",))).meter == "simulated"
    assert _meter_overrides(("shelly+http://a#thing=x",)) == {"meters": [{"url": "shelly+http://a#thing=x"}]}
    result = CliRunner().invoke(device, ["run", "--meter", "modbus", "--meter", "shelly+http://a"])
    assert result.exit_code != 0 and "cannot go with meter URLs" in result.output


# --- the pushed meter -------------------------------------------------------------------------


def sample(ts_ms: int, energy_wh: float = 1.0) -> Sample:
    return Sample(ts_ms=ts_ms, energy_wh=energy_wh)


def test_pushed_meter_newest_once_then_nothing_new_then_silent() -> None:
    meter = PushedMeter("m", silent_after_s=60)
    with pytest.raises(NoNewReading):
        meter.read(0)
    meter.offer(sample(1000, 1.0), 1000)
    meter.offer(sample(2000, 2.0), 2000)
    assert meter.read(3000) == sample(2000, 2.0)
    with pytest.raises(NoNewReading):
        meter.read(4000)
    with pytest.raises(MeterError) as err:
        meter.read(2000 + 61_000)
    assert err.value.reason == "timeout"
    meter.offer(sample(70_000, 3.0), 70_000)  # it comes back
    assert meter.read(70_500).energy_wh == 3.0


def test_pushed_meter_never_goes_back_in_time_and_reports_failures() -> None:
    meter = PushedMeter("m")
    meter.offer(sample(5000), 5000)
    assert meter.read(5000).ts_ms == 5000
    meter.offer(sample(5000), 6000)  # a repeated message
    meter.offer(sample(4000), 6000)  # a clock that stepped back
    with pytest.raises(NoNewReading):
        meter.read(7000)
    meter.fail(MeterError("garbage", "x"), 8000)
    with pytest.raises(MeterError) as err:
        meter.read(9000)
    assert err.value.reason == "garbage"


# --- hostile documents ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"x" * (64 * 1024 + 1),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"Total": ' + b"9" * 5000 + b"}",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b"NaN",
        b"",
    ],
    ids=["huge", "deep-array", "deep-object", "huge-int", "not-utf8", "array", "nan", "empty"],
)
def test_hostile_documents_are_garbage_never_a_crash(payload: bytes) -> None:
    with pytest.raises(MeterError) as err:
        decode_json(payload)
    assert err.value.reason == "garbage"


HANDLERS = [
    ("tele/p/SENSOR", tasmota.TasmotaSensor("tele/p/SENSOR", channel=None, tz=__import__("datetime").UTC).handle),
    ("zigbee2mqtt/p", zigbee2mqtt.Zigbee2MqttDevice("zigbee2mqtt/p", max_skew_s=300, tz=None, name="z").handle),
    ("emon/n", emonhub.EmonhubNode("emon", "n").handle),
    ("emon/n/E1", emonhub.EmonhubNode("emon", "n").handle),
    ("s/events/rpc", shelly.ShellyMqttState("s", channel=0).handle),
    ("s/status/switch:0", shelly.ShellyMqttState("s", channel=0).handle),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "ENERGY": json_values,
        "Time": json_values,
        "energy": json_values,
        "power": json_values,
        "last_seen": json_values,
        "E1": json_values,
        "time": json_values,
        "method": st.sampled_from(["NotifyStatus", "NotifyFullStatus", "x"]),
        "params": json_values,
        "aenergy": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(HANDLERS), st.one_of(st.binary(max_size=200), shaped.map(lambda d: json.dumps(d).encode())))
def test_every_handler_turns_any_payload_into_a_sample_none_or_meter_error(handler, payload: bytes) -> None:
    topic, handle = handler
    try:
        result = handle(topic, payload, 1_796_217_038_000)
    except MeterError:
        return
    assert result is None or isinstance(result, Sample)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_dsmr_any_bytes_never_crash_the_reader(data: bytes) -> None:
    reader = dsmr.DsmrReader(PushedMeter("d"), name="d-fuzz")
    reader.feed(data, 1)
    reader.feed(b"/X\r\n1-0:1.8.1(" + data[:50] + b"*kWh)\r\n!0000\r\n", 2)
