"""Each family's parser against the recorded documents: units to Wh, register choice, quirks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device.meters import MeterError
from device.sources import dsmr, emonhub, shelly, tasmota, zigbee2mqtt
from device.sources.dsmr import TelegramBuffer, crc16, parse_telegram

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meters"
NOW_MS = 1_796_217_038_000  # 2026-12-02T13:10:38Z


def doc(path: str) -> dict:
    return json.loads((FIXTURES / path).read_text())


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# --- Shelly ---------------------------------------------------------------------------------


def test_shelly_plus_1pm_reads_aenergy_total_in_wh_and_its_instant_values() -> None:
    s = shelly.parse_gen2(doc("shelly/plus1pm_getstatus.json"), channel=0, ts_ms=NOW_MS)
    assert (s.energy_wh, s.energy_export_wh) == (18236.472, 0.0)
    assert (s.power_w, s.voltage_v, s.current_a, s.pf, s.ts_ms) == (532.4, 231.6, 2.412, 0.95, NOW_MS)


def test_shelly_pro_3em_reads_import_and_export_of_all_phases() -> None:
    s = shelly.parse_gen2(doc("shelly/pro3em_getstatus.json"), channel=0, ts_ms=NOW_MS)
    assert (s.energy_wh, s.energy_export_wh) == (5552350.08, 2776175.04)
    assert (s.power_w, s.voltage_v, s.current_a, s.pf) == (715.532, 236.1, 11.083, None)


def test_shelly_pro_3em_exporting_reads_as_zero_import_power() -> None:
    d = doc("shelly/pro3em_getstatus.json")
    d["em:0"]["total_act_power"] = -1234.5
    assert shelly.parse_gen2(d, channel=0, ts_ms=NOW_MS).power_w == 0.0


def test_shelly_pro_em_reads_the_chosen_em1_channel_not_the_relay() -> None:
    s = shelly.parse_gen2(doc("shelly/proem50_getstatus.json"), channel=1, ts_ms=NOW_MS)
    assert (s.energy_wh, s.energy_export_wh, s.power_w, s.pf) == (6644.9, 2595.26, 5080.3, 0.99)


def test_shelly_gen1_plug_total_is_watt_minutes() -> None:
    s = shelly.parse_gen1(doc("shelly/gen1_plug_s_status.json"), channel=None, ts_ms=NOW_MS)
    assert s.energy_wh == round(1462143 / 60, 3) == 24369.05
    assert s.power_w == 52.98 and s.energy_export_wh is None


def test_shelly_gen1_3em_total_is_wh_and_the_phases_are_summed() -> None:
    s = shelly.parse_gen1(doc("shelly/gen1_3em_status.json"), channel=None, ts_ms=NOW_MS)
    assert s.energy_wh == round(1520345.6 + 842210.2 + 2210987.9, 3)
    assert s.energy_export_wh == round(120.4 + 0.0 + 35.1, 3)
    assert s.power_w == round(412.31 + 88.02 + 1203.77, 3)
    assert (s.voltage_v, s.current_a, s.pf) == (231.12, None, None)
    one = shelly.parse_gen1(doc("shelly/gen1_3em_status.json"), channel=2, ts_ms=NOW_MS)
    assert (one.energy_wh, one.current_a, one.pf) == (2210987.9, 5.31, 0.98)


def test_shelly_gen1_invalid_meter_is_garbage() -> None:
    d = doc("shelly/gen1_plug_s_status.json")
    d["meters"][0]["is_valid"] = False
    with pytest.raises(MeterError) as err:
        shelly.parse_gen1(d, channel=None, ts_ms=NOW_MS)
    assert err.value.reason == "garbage"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("switch:0"),
        lambda d: d["switch:0"]["aenergy"].pop("total"),
        lambda d: d["switch:0"]["aenergy"].__setitem__("total", "18236.472"),
        lambda d: d["switch:0"]["aenergy"].__setitem__("total", True),
        lambda d: d["switch:0"]["aenergy"].__setitem__("total", -1.0),
        lambda d: d["switch:0"]["aenergy"].__setitem__("total", 1e300),
        lambda d: d["switch:0"].__setitem__("voltage", -3.0),
    ],
    ids=["no-switch", "no-total", "string", "bool", "negative", "huge", "negative-voltage"],
)
def test_shelly_missing_or_wrong_values_are_garbage(mutate) -> None:
    d = doc("shelly/plus1pm_getstatus.json")
    mutate(d)
    with pytest.raises(MeterError) as err:
        shelly.parse_gen2(d, channel=0, ts_ms=NOW_MS)
    assert err.value.reason == "garbage"


def test_shelly_missing_instant_values_leave_a_register_only_reading() -> None:
    d = doc("shelly/plus1pm_getstatus.json")
    for key in ("apower", "voltage", "current", "pf"):
        d["switch:0"].pop(key)
    s = shelly.parse_gen2(d, channel=0, ts_ms=NOW_MS)
    assert s.energy_wh == 18236.472 and (s.power_w, s.voltage_v, s.current_a, s.pf) == (None, None, None, None)


def test_shelly_mqtt_merges_status_and_notify_status_into_one_document() -> None:
    state = shelly.ShellyMqttState("shellyplus1pm-a8032ab12345", channel=0)
    status = (FIXTURES / "shelly/mqtt_status_switch0.json").read_bytes()
    first = state.handle("shellyplus1pm-a8032ab12345/status/switch:0", status, NOW_MS)
    assert first is not None and (first.energy_wh, first.power_w, first.ts_ms) == (18302.114, 611.2, NOW_MS)
    notify = (FIXTURES / "shelly/mqtt_notifystatus.json").read_bytes()
    second = state.handle("shellyplus1pm-a8032ab12345/events/rpc", notify, NOW_MS + 5000)
    # the partial update moves the register and keeps the power of the full status; ts is params.ts
    assert second is not None and (second.energy_wh, second.power_w) == (18312.345, 611.2)
    assert second.ts_ms == 1764677881420


def test_shelly_mqtt_power_before_any_register_gives_no_reading() -> None:
    state = shelly.ShellyMqttState("p", channel=0)
    assert state.handle("p/status/em:0", json.dumps(doc("shelly/pro3em_getstatus.json")["em:0"]).encode(), 1) is None
    data = json.dumps(doc("shelly/pro3em_getstatus.json")["emdata:0"]).encode()
    assert state.handle("p/status/emdata:0", data, 2).energy_wh == 5552350.08


# --- Tasmota --------------------------------------------------------------------------------


def test_tasmota_total_is_kwh_and_time_is_local_in_the_given_zone() -> None:
    sensor = tasmota.TasmotaSensor("tele/plug/SENSOR", channel=None, tz=ZoneInfo("Europe/Amsterdam"))
    received = ms("2026-12-02T14:10:40+01:00")
    s = sensor.handle("tele/plug/SENSOR", (FIXTURES / "tasmota/sensor_pow_r2.json").read_bytes(), received)
    assert s is not None and s.energy_wh == 3705.0
    assert (s.power_w, s.voltage_v, s.current_a, s.pf) == (5.0, 233.0, 0.021, 1.0)
    assert s.ts_ms == ms("2026-12-02T14:10:38+01:00")  # Time read in CET, not UTC


def test_tasmota_time_in_the_wrong_zone_falls_back_to_receipt() -> None:
    sensor = tasmota.TasmotaSensor("tele/plug/SENSOR", channel=None, tz=UTC)
    received = ms("2026-12-02T14:10:40+01:00")  # the plug's clock is CET: an hour from UTC
    s = sensor.handle("tele/plug/SENSOR", (FIXTURES / "tasmota/sensor_pow_r2.json").read_bytes(), received)
    assert s is not None and s.ts_ms == received


def test_tasmota_setoption52_offset_and_export_register() -> None:
    sensor = tasmota.TasmotaSensor("tele/meter/SENSOR", channel=None, tz=UTC)
    received = ms("2026-12-02T14:10:39+01:00")
    s = sensor.handle("tele/meter/SENSOR", (FIXTURES / "tasmota/sensor_setoption52_export.json").read_bytes(), received)
    assert s is not None and s.ts_ms == ms("2026-12-02T14:10:38+01:00")
    assert (s.energy_wh, s.energy_export_wh, s.power_w) == (5120512.0, 2048256.0, 0.0)


def test_tasmota_setoption129_channels_are_summed_or_chosen() -> None:
    energy = doc("tasmota/sensor_setoption129_two_channels.json")["ENERGY"]
    both = tasmota.parse_energy(energy, channel=None, ts_ms=NOW_MS)
    assert (both.energy_wh, both.power_w, both.voltage_v, both.current_a, both.pf) == (19134.0, 227.0, None, None, None)
    second = tasmota.parse_energy(energy, channel=2, ts_ms=NOW_MS)
    assert (second.energy_wh, second.power_w, second.voltage_v, second.current_a, second.pf) == (
        6789.0,
        42.0,
        230.0,
        0.239,
        0.76,
    )
    with pytest.raises(MeterError):
        tasmota.parse_energy(energy, channel=3, ts_ms=NOW_MS)


def test_tasmota_status_8_and_messages_without_energy() -> None:
    status = doc("tasmota/status8.json")
    meter = tasmota.TasmotaHttpMeter("http://x/cm?cmnd=Status%208", channel=None, fetch=lambda url, **_: status)
    assert meter.read(NOW_MS).energy_wh == 3705.0
    sensor = tasmota.TasmotaSensor("tele/plug/SENSOR", channel=None, tz=UTC)
    assert sensor.handle("tele/plug/STATE", (FIXTURES / "tasmota/state.json").read_bytes(), NOW_MS) is None
    assert sensor.handle("tele/plug/SENSOR", b'{"Time":"2026-12-02T14:10:38","AM2301":{"Temperature":21}}', 1) is None


def test_tasmota_status_url_carries_the_web_password_as_parameters() -> None:
    assert tasmota.status_url("http://10.0.0.6") == "http://10.0.0.6/cm?cmnd=Status%208"
    assert tasmota.status_url("http://admin:p%40ss@10.0.0.6:8080") == (
        "http://10.0.0.6:8080/cm?cmnd=Status%208&user=admin&password=p%40ss"
    )


def test_tasmota_total_restarting_after_a_flash_is_published_as_reported() -> None:
    sensor = tasmota.TasmotaSensor("t/SENSOR", channel=None, tz=UTC)
    before = sensor.handle("t/SENSOR", b'{"Time":"1970-01-01T00:00:09","ENERGY":{"Total":812.5,"Power":3}}', NOW_MS)
    after = sensor.handle("t/SENSOR", b'{"Time":"1970-01-01T00:00:09","ENERGY":{"Total":0.0,"Power":3}}', NOW_MS + 1)
    assert before is not None and after is not None
    assert (before.energy_wh, after.energy_wh) == (812500.0, 0.0)
    assert after.ts_ms == NOW_MS + 1  # a clock without NTP (1970) is not believed
    assert sensor.watch.decreases == 1


# --- Zigbee2MQTT -----------------------------------------------------------------------------


def test_zigbee2mqtt_energy_is_kwh_and_the_time_is_the_receipt() -> None:
    device = zigbee2mqtt.Zigbee2MqttDevice("zigbee2mqtt/plug", max_skew_s=300, tz=UTC, name="z")
    s = device.handle("zigbee2mqtt/plug", (FIXTURES / "zigbee2mqtt/ts011f_plug.json").read_bytes(), NOW_MS)
    assert s is not None and (s.energy_wh, s.power_w, s.voltage_v, s.current_a, s.ts_ms) == (
        412370.0,
        1893.2,
        231.0,
        8.21,
        NOW_MS,
    )


def test_zigbee2mqtt_last_seen_when_configured_and_messages_without_energy() -> None:
    device = zigbee2mqtt.Zigbee2MqttDevice("zigbee2mqtt/plug", max_skew_s=300, tz=UTC, name="z")
    payload = (FIXTURES / "zigbee2mqtt/ts011f_plug_last_seen.json").read_bytes()
    s = device.handle("zigbee2mqtt/plug", payload, NOW_MS)
    assert s is not None and s.ts_ms == ms("2026-12-02T14:10:38+01:00")
    light = (FIXTURES / "zigbee2mqtt/light_without_energy.json").read_bytes()
    assert device.handle("zigbee2mqtt/plug", light, NOW_MS) is None
    assert zigbee2mqtt.last_seen_ms(1796217038000) == 1796217038000


# --- emonhub --------------------------------------------------------------------------------


def test_emonhub_json_form_with_time() -> None:
    node = emonhub.EmonhubNode("emon", "emontx4")
    payload = (FIXTURES / "emonhub/emontx4_json.json").read_bytes()
    s = node.handle("emon/emontx4", payload, 1796217040000)
    assert s is not None and (s.energy_wh, s.power_w, s.voltage_v, s.ts_ms) == (1048576.0, 312.0, 238.71, 1796217038820)


def test_emonhub_plain_values_make_a_reading_when_the_energy_input_arrives() -> None:
    node = emonhub.EmonhubNode("emon", "emontx4", energy="E3", power="P3")
    assert node.handle("emon/emontx4/V1", b"238.7", 1) is None
    assert node.handle("emon/emontx4/P3", b"1204", 2) is None
    assert node.handle("emon/emontx4/P1", b"312", 2) is None  # not this meter's input
    s = node.handle("emon/emontx4/E3", b"733210", 3)
    assert s is not None and (s.energy_wh, s.power_w, s.voltage_v, s.ts_ms) == (733210.0, 1204.0, 238.7, 3)
    for bad in (b"nan", b"12a", b"\xff\xfe", b"1" * 65, b""):
        with pytest.raises(MeterError):
            node.handle("emon/emontx4/E3", bad, 4)


# --- DSMR -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,import_wh,export_wh,power_w,ts",
    [
        ("dsmr5_iskra_am550.txt", 4426 + 2399, 2444, 244.0, "2017-01-02T19:20:02+01:00"),
        ("dsmr42_kaifa.txt", 1581123 + 1435706, 0, 2027.0, "2016-11-13T20:57:57+01:00"),
        ("dsmr5_sagemcom_t210d_wh.txt", 5017120 + 1528646, 0 + 58, 286.0, "2022-10-06T15:50:14+02:00"),
    ],
)
def test_dsmr_telegrams_crc_registers_and_time(name, import_wh, export_wh, power_w, ts) -> None:
    (telegram,) = TelegramBuffer().feed((FIXTURES / "dsmr" / name).read_bytes())
    assert telegram.crc_ok()
    s = parse_telegram(telegram.body, received_ms=NOW_MS)
    assert (s.energy_wh, s.energy_export_wh, s.power_w, s.ts_ms) == (import_wh, export_wh, power_w, ms(ts))


def test_dsmr_crc_is_crc16_arc() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the check value of CRC-16/ARC


def test_dsmr_telegrams_split_anywhere_and_noise_between_them() -> None:
    data = (FIXTURES / "dsmr/dsmr5_iskra_am550.txt").read_bytes()
    stream = b"\x00garbage!\r\n" + data + b"noise" + data
    buffer, found = TelegramBuffer(), []
    for i in range(0, len(stream), 7):
        found += buffer.feed(stream[i : i + 7])
    assert len(found) == 2 and all(t.crc_ok() for t in found)


def test_dsmr_reader_drops_a_bad_crc_with_a_counter() -> None:
    from device.sources.feed import PushedMeter

    meter = PushedMeter("dsmr-test")
    reader = dsmr.DsmrReader(meter, name="dsmr-test")
    good = (FIXTURES / "dsmr/dsmr5_iskra_am550.txt").read_bytes()
    bad = good.replace(b"1-0:1.8.1(000004.426", b"1-0:1.8.1(000009.426")
    reader.feed(bad, NOW_MS)
    assert reader.dropped == {"crc": 1} and meter.offered == 0
    reader.feed(good, NOW_MS)
    assert meter.read(NOW_MS).energy_wh == 6825.0
    no_crc = good.replace(b"!6EEE", b"!")
    reader.feed(no_crc, NOW_MS)
    assert reader.dropped == {"crc": 2}


def test_dsmr_noise_without_telegrams_stays_bounded() -> None:
    buffer = TelegramBuffer()
    for _ in range(200):
        assert buffer.feed(b"/" + b"x" * 4096) == []
    assert len(buffer._buffer) <= dsmr.MAX_BUFFER_BYTES
