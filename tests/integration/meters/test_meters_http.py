"""Shelly and Tasmota sources polling a local http.server that serves the recorded documents."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from device.cli import device
from device.meters import MeterError
from device.sources import open_meter, parse_meter_url
from readings.models import Message

pytestmark = pytest.mark.integration
NOW_MS = 1_796_217_038_000


def shelly_gen2(device_http, fixture_bytes, status: str = "shelly/plus1pm_getstatus.json") -> None:
    device_http.serve("/shelly", fixture_bytes("shelly/gen2_shelly.json"))
    device_http.serve("/rpc/Shelly.GetStatus", fixture_bytes(status))


def reason(meter, now_ms: int = NOW_MS) -> str:
    with pytest.raises(MeterError) as err:
        meter.read(now_ms)
    return err.value.reason


def test_shelly_gen2_found_by_its_gen_and_read_through_a_reboot(device_http, fixture_bytes) -> None:
    shelly_gen2(device_http, fixture_bytes)
    meter = open_meter(parse_meter_url(f"shelly+{device_http.base}#thing=meter-shelly"))
    first = meter.read(NOW_MS)
    assert (first.energy_wh, first.power_w, first.ts_ms) == (18236.472, 532.4, NOW_MS)
    device_http.serve("/rpc/Shelly.GetStatus", fixture_bytes("shelly/plus1pm_getstatus_after_reboot.json"))
    after = meter.read(NOW_MS + 10_000)
    # the reset is published as the device reports it; the consumer's register rules take it
    assert after.energy_wh == 4.417 and meter.watch.reboots == 1 and meter.watch.decreases == 1
    assert device_http.requests == ["/shelly", "/rpc/Shelly.GetStatus", "/rpc/Shelly.GetStatus"]


def test_shelly_pro_3em_publishes_import_and_export(device_http, fixture_bytes) -> None:
    shelly_gen2(device_http, fixture_bytes, "shelly/pro3em_getstatus.json")
    sample = open_meter(parse_meter_url(f"shelly+{device_http.base}")).read(NOW_MS)
    assert (sample.energy_wh, sample.energy_export_wh) == (5552350.08, 2776175.04)


def test_shelly_gen1_plug_in_watt_minutes(device_http, fixture_bytes) -> None:
    device_http.serve("/shelly", fixture_bytes("shelly/gen1_shelly.json"))
    device_http.serve("/status", fixture_bytes("shelly/gen1_plug_s_status.json"))
    assert open_meter(parse_meter_url(f"shelly+{device_http.base}")).read(NOW_MS).energy_wh == 24369.05


def test_a_device_that_goes_away_and_comes_back(device_http, fixture_bytes) -> None:
    shelly_gen2(device_http, fixture_bytes)
    meter = open_meter(parse_meter_url(f"shelly+{device_http.base}#timeout_s=0.5"))
    assert meter.read(NOW_MS).energy_wh == 18236.472
    device_http.stop()
    assert reason(meter) == "connection"  # nothing listens
    device_http.start()
    assert meter.read(NOW_MS + 20_000).energy_wh == 18236.472


def test_a_device_that_accepts_and_never_answers_is_a_timeout(device_http, fixture_bytes) -> None:
    shelly_gen2(device_http, fixture_bytes)
    meter = open_meter(parse_meter_url(f"shelly+{device_http.base}#gen=2&timeout_s=0.3"))
    device_http.hold = threading.Event()
    try:
        assert reason(meter) == "timeout"
    finally:
        device_http.hold.set()
        device_http.hold = None
    assert meter.read(NOW_MS).energy_wh == 18236.472


@pytest.mark.parametrize(
    "body,status,expected",
    [
        (b"x" * (2 * 1024 * 1024), 200, "garbage"),  # 2 MB: refused after 64 KB, never parsed
        (b"<html>Shelly</html>", 200, "garbage"),
        (b"[" * 200_000, 200, "garbage"),
        (json.dumps({"switch:0": {"aenergy": {"total": "lots"}}}).encode(), 200, "garbage"),
        (b'{"code":401,"message":"unauthorized"}', 401, "protocol"),
    ],
    ids=["huge", "html", "deep", "string-register", "auth"],
)
def test_hostile_or_broken_answers_are_reasons_not_crashes(device_http, fixture_bytes, body, status, expected) -> None:
    shelly_gen2(device_http, fixture_bytes)
    meter = open_meter(parse_meter_url(f"shelly+{device_http.base}#gen=2"))
    device_http.serve("/rpc/Shelly.GetStatus", body, status)
    assert reason(meter) == expected
    device_http.serve("/rpc/Shelly.GetStatus", fixture_bytes("shelly/plus1pm_getstatus.json"))
    assert meter.read(NOW_MS).energy_wh == 18236.472  # and the next good answer is read


def test_tasmota_status_8_with_its_web_password(device_http, fixture_bytes) -> None:
    device_http.serve("/cm?cmnd=Status%208&user=admin&password=s3cret", fixture_bytes("tasmota/status8.json"))
    meter = open_meter(parse_meter_url(f"tasmota+http://admin:s3cret@127.0.0.1:{device_http.port}"))
    sample = meter.read(NOW_MS)
    assert (sample.energy_wh, sample.power_w, sample.ts_ms) == (3705.0, 5.0, NOW_MS)


def test_probe_prints_the_wire_v1_message_it_would_publish(device_http, fixture_bytes) -> None:
    shelly_gen2(device_http, fixture_bytes, "shelly/pro3em_getstatus.json")
    result = CliRunner().invoke(device, ["probe", f"shelly+{device_http.base}#thing=meter-shelly"])
    assert result.exit_code == 0, result.output
    message = Message.model_validate_json(result.stdout)
    assert message.device_id == "meter-shelly"
    (reading,) = message.readings
    assert (reading.seq, reading.energy_wh, reading.energy_export_wh, reading.power_w) == (
        1,
        5552350.08,
        2776175.04,
        715.532,
    )


def test_probe_of_a_broken_device_exits_with_the_reason(device_http, fixture_bytes) -> None:
    shelly_gen2(device_http, fixture_bytes)
    device_http.serve("/rpc/Shelly.GetStatus", b"{}")
    result = CliRunner().invoke(device, ["probe", f"shelly+{device_http.base}"])
    assert result.exit_code == 1 and "garbage" in result.output
