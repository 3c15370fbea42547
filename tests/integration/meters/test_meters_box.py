"""One box, three kinds of meter, three things: through the wattstream Mosquitto (TLS + ACL).

``wattstream device run`` reads a Shelly (HTTP stand-in), a Tasmota (a LAN Mosquitto) and a DSMR
meter (a socat pty) and publishes each as its own thing, with its own certificate, spool and
MQTT connection. The truth is what the stand-ins showed: every register a thing publishes is
one its meter showed (in Wh), none is the register of the telegram with the bad CRC, the last
one is the meter's last, and each thing's seq and ts only grow.
"""

from __future__ import annotations

import pytest

from devstack.stack import wait_until
from readings.models import Message

pytestmark = pytest.mark.integration
STEPS = 5


def test_one_box_publishes_three_meters_as_three_things(
    household, wattstream_broker, meter_certs, published, start_box
) -> None:
    household.step(0)
    box = start_box(household, wattstream_broker.port, meter_certs)
    poisoned = None
    for i in range(STEPS):
        if i:
            household.step(i)
        if i == 2:
            poisoned = household.bad_telegram(i)
        expected = {thing: values[-1] for thing, values in household.offered.items()}

        def done(e: dict[str, float] = expected) -> bool:
            household.resend()  # the devices send again every period; the box reads each once
            return all((r := published.readings(t)) and r[-1]["energy_wh"] == wh for t, wh in e.items())

        wait_until(
            done,
            30,
            0.1,
            f"step {i} published by every thing (box log: {box.log_path})",
        )
    assert box.stop() == 0, box.log_text()[-3000:]

    for _topic, message in published.messages:
        Message.model_validate(message)  # what the consumer takes
    assert {topic for topic, _ in published.messages} == {f"energy/consumption/{t}" for t in household.things}
    assert all(m["device_id"] == topic.rsplit("/", 1)[1] for topic, m in published.messages)
    for thing in household.things:
        readings = published.readings(thing)
        registers = [r["energy_wh"] for r in readings]
        assert set(registers) <= set(household.offered[thing]), thing
        assert registers == sorted(registers) and registers[-1] == household.offered[thing][-1]
        assert [r["seq"] for r in readings] == list(range(1, len(readings) + 1))
        stamps = [r["ts"] for r in readings]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    p1 = published.readings("meter-dsmr")
    assert poisoned not in {r["energy_wh"] for r in p1}
    assert {r["energy_export_wh"] for r in p1} == {2444.0} and {r["power_w"] for r in p1} == {244.0}
    assert all("energy_export_wh" not in r for r in published.readings("meter-tasmota"))
    assert {r["energy_export_wh"] for r in published.readings("meter-shelly")} == {0.0}
    # the Tasmota and DSMR readings carry their devices' clocks (one second per step), not the box's
    assert len(published.readings("meter-tasmota")) == len(p1) == STEPS
    assert "dsmr_telegram_dropped" in box.log_text()
