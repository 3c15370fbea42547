"""A DSMR P1 source reading telegrams from a socat pty pair: good ones read, a bad CRC dropped."""

from __future__ import annotations

import time

import pytest

from device.meters import MeterError, NoNewReading
from device.sources import open_meter, parse_meter_url
from devstack.stack import wait_for

pytestmark = pytest.mark.integration


def read_next(meter, timeout_s: float = 10.0):
    found: list = []

    def ready() -> bool:
        try:
            found.append(meter.read(time.time_ns() // 1_000_000))
        except NoNewReading:
            return False
        return True

    assert wait_for(ready, timeout_s, 0.02), "no telegram became a reading"
    return found[0]


def test_telegrams_over_a_serial_line_good_bad_crc_and_garbage(pty_pair, fixture_bytes) -> None:
    from prometheus_client import REGISTRY

    url = f"dsmr+serial://{pty_pair.meter_end}#thing=meter-dsmr"
    label = parse_meter_url(url).label
    meter = open_meter(parse_meter_url(url))
    try:
        assert meter.transport.port_open.wait(10), "the source did not open its end of the pty"
        pty_pair.write(b"\x00\xffline noise\r\n" + fixture_bytes("dsmr/dsmr42_kaifa.txt"))  # stamped 2016
        first = read_next(meter)
        assert (first.energy_wh, first.energy_export_wh, first.power_w) == (1581123 + 1435706, 0.0, 2027.0)

        reader = meter.transport.reader
        good = fixture_bytes("dsmr/dsmr5_iskra_am550.txt")  # stamped 2017, after the first
        bad = good.replace(b"1-0:1.8.1(000004.426", b"1-0:1.8.1(000005.426")  # one digit off: the CRC fails
        pty_pair.write(bad + good)
        second = read_next(meter)  # the telegram after the bad one
        assert (second.energy_wh, second.energy_export_wh, second.power_w, second.voltage_v) == (
            6825.0,
            2444.0,
            244.0,
            230.0,
        )
        assert reader.dropped == {"crc": 1}
        dropped = REGISTRY.get_sample_value(
            "wattstream_device_meter_messages_dropped_total", {"meter": label, "reason": "crc"}
        )
        assert dropped == 1.0
        # a telegram whose CRC is right but whose register is not a number: garbage, reported
        body = b"/XMX5\r\n\r\n0-0:1.0.0(261202141038W)\r\n1-0:1.8.1(lots*kWh)\r\n!"
        from device.sources.dsmr import crc16

        pty_pair.write(body + b"%04X\r\n" % crc16(body))
        assert wait_for(lambda: reader.dropped.get("garbage") == 1, 10, 0.02)
        with pytest.raises(MeterError) as err:
            meter.read(time.time_ns() // 1_000_000)
        assert err.value.reason == "garbage"
    finally:
        meter.close()


def test_a_port_that_does_not_exist_is_a_connection_failure(tmp_path) -> None:
    meter = open_meter(parse_meter_url(f"dsmr+serial://{tmp_path}/ttyUSB9"))
    try:
        found: list[str] = []

        def failed() -> bool:
            try:
                meter.read(time.time_ns() // 1_000_000)
            except NoNewReading:
                return False
            except MeterError as exc:
                found.append(exc.reason)
            return True

        assert wait_for(failed, 10, 0.02) and found == ["connection"]
    finally:
        meter.close()
