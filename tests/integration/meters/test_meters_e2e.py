"""Three kinds of meter to DynamoDB, nothing mocked: the stored kWh are the meters' registers.

One ``wattstream device run`` reads a Shelly (HTTP stand-in), a Tasmota (LAN Mosquitto) and a
DSMR meter (socat pty) as three things -> the TLS Mosquitto -> ``wattstream bridge`` ->
kinesis-mock -> ``wattstream consume`` (KCL) -> DynamoDB. Per thing, the energy stored (the sum
of its daily buckets) must equal its last published register minus its first, and that span
must be what the stand-in's registers moved by, converted to Wh: 1.5 Wh a step for the Shelly
(``aenergy.total`` Wh), 2 Wh for the Tasmota (``Total`` kWh), 3 Wh for the DSMR meter
(1-0:1.8.1 kWh); the bad-CRC telegram's register never counts.
"""

from __future__ import annotations

import pytest

from device.spool import inspect
from devstack.report import energy_by_device, samples_by_device
from devstack.stack import read_stream, start_bridge, wait_until

pytestmark = pytest.mark.integration
STEPS = 4
WH_PER_STEP = {"meter-shelly": 1.5, "meter-tasmota": 2.0, "meter-dsmr": 3.0}
TOLERANCE_WH = 0.01


def test_three_meters_through_the_pipeline_store_their_registers(
    pipeline, household, wattstream_broker, meter_certs, start_box, tmp_path
) -> None:
    stream = pipeline.settings.stream_name
    bridge = start_bridge(wattstream_broker.port, meter_certs, stream, pipeline.env, tmp_path / "bridge.log")
    try:
        consumer = pipeline.start_consumer()
        household.step(0)
        box = start_box(household, wattstream_broker.port, meter_certs)
        spool_dir = tmp_path / "spool"
        for i in range(STEPS):
            if i:
                household.step(i)
            if i == 1:
                household.bad_telegram(i)
            expected = {thing: values[-1] for thing, values in household.offered.items()}

            def read(e: dict[str, float] = expected) -> bool:
                household.resend()
                spools = {t: inspect(spool_dir / f"{t}.db") for t in e}
                return all(s is not None and s.last.energy_wh == e[t] for t, s in spools.items())

            wait_until(read, 30, 0.1, f"step {i} read by every meter (box log: {box.log_path})")
        assert box.stop() == 0, box.log_text()[-3000:]
        spools = {t: inspect(spool_dir / f"{t}.db") for t in household.things}
        assert all(s is not None and s.unacked == 0 for s in spools.values()), "the box left readings unsent"

        taken = {t: s.last.seq for t, s in spools.items() if s is not None}
        found: dict = {}

        def on_stream() -> bool:
            records = read_stream(pipeline.kinesis, stream)
            unique = {(rec["device_id"], r["seq"]): r for rec in records for r in rec["readings"]}
            found["readings"] = unique
            return all(sum(1 for d, _ in unique if d == t) == n for t, n in taken.items())

        wait_until(on_stream, 60, 1.0, "every reading of every meter on the stream")
        by_thing = {t: [r for (d, _), r in sorted(found["readings"].items()) if d == t] for t in household.things}
        total = sum(len(r) for r in by_thing.values())
        pipeline.wait_stored(consumer, total, timeout_s=150)
        assert consumer.stop() == 0

        items = pipeline.aggregates()
        energy, samples = energy_by_device(items), samples_by_device(items)
        for thing, readings in by_thing.items():
            first, last = readings[0]["energy_wh"], readings[-1]["energy_wh"]
            assert first == household.offered[thing][0] and last == household.offered[thing][-1]
            assert abs(last - first - WH_PER_STEP[thing] * (STEPS - 1)) < TOLERANCE_WH
            assert abs(energy[thing] - (last - first)) < TOLERANCE_WH, (thing, energy[thing], last - first)
            assert samples[thing] == len(readings)
    finally:
        bridge.stop()
