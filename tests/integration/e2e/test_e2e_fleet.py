"""The whole path on one machine, nothing mocked: 100 boxes to DynamoDB and S3.

``wattstream device simulate`` (100 boxes, one mutual-TLS MQTT connection and one SQLite
spool each) -> Mosquitto (TLS + ACL) -> ``wattstream bridge`` (the topic rule) -> kinesis-mock
-> ``wattstream consume`` (the real KCL MultiLangDaemon) -> DynamoDB aggregates + S3 archive.

The truth is computed without the consumer: each box's spool says which readings it took
(seq 1..last_seq, every one acknowledged when the spool is empty) and its last register; the
raw stream, read with plain GetRecords and deduplicated on (device_id, seq), holds the first
register (a box deletes a reading once the broker acknowledged it). Stored energy per device
(sum of its daily buckets) must equal last register - first register, and its samples the
number of readings it took.

A box also publishes, on its own topic and with its own certificate, a message claiming to be
another box: the consumer dead-letters it as ``spoofed_device_id`` and neither box's figures
move.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device.certs import CertLayout
from devstack import broker as broker_lib
from devstack.report import energy_by_device, metric_sum, samples_by_device, scrape
from devstack.stack import (
    Simulation,
    fleet_truth,
    issue_certificates,
    read_spools,
    read_stream,
    start_bridge,
    wait_until,
)
from readings.models import to_rfc3339

pytestmark = pytest.mark.integration

DEVICES = 100
DURATION_S = 30.0  # real seconds of reading
INTERVAL_S = 10.0  # simulated seconds between two reads of a meter
SPEED = 60.0  # simulated seconds per real second: 6 readings per box and real second
MAX_WAIT_S = 300.0  # simulated: a message closes after 5 real seconds, ~30 readings, ~3 KB
TOLERANCE_WH = 0.01
SPOOFER, VICTIM = "box-0001", "box-0002"


def publish_spoof(cert_dir: Path, port: int) -> bytes:
    """With SPOOFER's certificate, on SPOOFER's topic, a reading that claims to be VICTIM's seq 1."""
    layout = CertLayout(cert_dir)
    identity = layout.device(SPOOFER)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{SPOOFER}-tamper", protocol=mqtt.MQTTv311)
    client.tls_set(
        str(layout.ca.cert_path), str(identity.cert_path), str(identity.key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT
    )
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure else connected.set()
    payload = orjson.dumps(
        {
            "v": 1,
            "device_id": VICTIM,
            "readings": [
                {"seq": 1, "ts": to_rfc3339(time.time_ns() // 1_000_000), "energy_wh": 9_999_999.0, "power_w": 1.0}
            ],
        }
    )
    client.connect("localhost", port, keepalive=10)
    client.loop_start()
    try:
        assert connected.wait(10), "the spoofing box could not connect"
        info = client.publish(f"energy/consumption/{SPOOFER}", payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()
    return payload


def _data(line: dict) -> dict:
    data = line["data"]
    return json.loads(data) if isinstance(data, str) else data


def test_hundred_boxes_over_mqtt_are_stored_exactly_once(pipeline, tmp_path: Path) -> None:
    if broker_lib.mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    stream = pipeline.settings.stream_name
    things = [f"box-{i:04d}" for i in range(1, DEVICES + 1)]
    cert_dir = issue_certificates(tmp_path / "certs", things)
    spool_dir = tmp_path / "spool"
    broker = broker_lib.start(tmp_path / "mosquitto", cert_dir)
    bridge = sim = None
    try:
        bridge = start_bridge(broker.port, cert_dir, stream, pipeline.env, tmp_path / "bridge.log")
        # Simulated time runs ahead of the wall clock (30 min in 30 s): let the consumer accept
        # readings stamped that far after their receipt.
        consumer = pipeline.start_consumer()
        sim = Simulation(
            DEVICES,
            DURATION_S,
            broker.port,
            cert_dir,
            spool_dir,
            tmp_path,
            interval_s=INTERVAL_S,
            speed=SPEED,
            max_readings=50,
            max_wait_s=MAX_WAIT_S,
            drain_s=60,
        ).start()
        time.sleep(5)
        spoof = publish_spoof(cert_dir, broker.port)
        summary = sim.wait()

        spools = read_spools(spool_dir)
        assert sorted(spools) == things
        assert summary["spooled_left"] == 0 and summary["readings_acked"] == summary["readings"]
        assert sum(s.last.seq for s in spools.values()) == summary["readings"] >= DEVICES * 50

        # The bridge puts a message on the stream before it acks it to the broker, which acks
        # the box: once the boxes are drained, everything is on the stream or about to be.
        found: dict = {}

        def stream_complete() -> bool:
            found["records"] = read_stream(pipeline.kinesis, stream)
            found["truth"], found["problems"] = fleet_truth(spools, found["records"])
            return not found["problems"]

        wait_until(stream_complete, 60, 1.0, "every spooled reading on the stream")
        truth, records = found["truth"], found["records"]
        assert sorted(truth) == things
        spoofed = [r for r in records if r["device_id"] != r["thing"]]
        assert [(r["device_id"], r["thing"], r["_partition_key"]) for r in spoofed] == [(VICTIM, SPOOFER, SPOOFER)]
        readings = sum(t.readings for t in truth.values())

        pipeline.wait_stored(consumer, readings, timeout_s=150)
        wait_until(
            lambda: any(line["reason"] == "spoofed_device_id" for line in pipeline.dead_letters()),
            30,
            1.0,
            "the spoofed message dead-lettered",
        )
        metrics = scrape(consumer.metrics_url)
        assert consumer.stop() == 0

        items = pipeline.aggregates()
        energy, samples = energy_by_device(items), samples_by_device(items)
        assert sorted(energy) == things and sorted(samples) == things
        wrong = {
            d: (energy[d], t.energy_wh, samples[d], t.readings)
            for d, t in truth.items()
            if abs(energy[d] - t.energy_wh) > TOLERANCE_WH or samples[d] != t.readings
        }
        assert wrong == {}, f"{len(wrong)} devices differ (stored wh, metered wh, samples, readings): {wrong}"
        assert all(t.energy_wh > 0 for t in truth.values())

        (dead,) = [line for line in pipeline.dead_letters() if line["reason"] == "spoofed_device_id"]
        assert _data(dead)["device_id"] == VICTIM and _data(dead)["thing"] == SPOOFER
        assert _data(dead)["readings"] == orjson.loads(spoof)["readings"]
        assert metric_sum(metrics, "wattstream_readings_stored_total") == readings
        assert metrics.get("wattstream_rejected_total{reason=spoofed_device_id}") == 1
        assert metric_sum(metrics, "wattstream_rejected_total") == 1
        # batching: far fewer item writes than readings
        assert metric_sum(metrics, "wattstream_dynamodb_writes_total") < readings / 10
    finally:
        if sim is not None:
            sim.stop()
        if bridge is not None:
            bridge.stop()
        broker_lib.stop(broker)
