"""A message the rule cannot evaluate is dead-lettered and acked; the bridge keeps forwarding.

Real Mosquitto, the bridge as a process, kinesis-mock: the poison message below once ended
paho's network thread inside the bridge, which then idled while the broker acked every box.
"""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device.certs import CertLayout

pytestmark = pytest.mark.integration

# 560 bytes: nesting the rule's encoder refuses (orjson writes at most 253 levels)
POISON = b'{"x":' + b"[" * 277 + b"]" * 277 + b"}"


def box_client(cert_dir: Path, thing: str) -> tuple[mqtt.Client, threading.Event]:
    layout = CertLayout(cert_dir)
    identity = layout.device(thing)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
    client.tls_set(
        str(layout.ca.cert_path), str(identity.cert_path), str(identity.key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT
    )
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure else connected.set()
    return client, connected


def test_poison_message_is_dead_lettered_and_the_next_message_arrives(
    broker, cert_dir: Path, procs, stream, kinesis, kit
) -> None:
    assert len(POISON) == 560
    bridge = procs.bridge(broker.port, stream)
    pub, up = box_client(cert_dir, "box-a")
    pub.connect("localhost", broker.port, keepalive=10)
    pub.loop_start()
    try:
        assert up.wait(5)
        pub.publish("energy/consumption/box-a", POISON, qos=1).wait_for_publish(5)
        valid = {"v": 1, "device_id": "box-a", "readings": [{"seq": 1, "ts": "2026-11-27T13:00:00Z", "energy_wh": 1.0}]}
        pub.publish("energy/consumption/box-a", json.dumps(valid).encode(), qos=1).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()

    client = kinesis.client()
    assert kit.wait_for(lambda: kit.read_stream(client, stream), 30), "the valid message never reached Kinesis"
    (record,) = kit.read_stream(client, stream)
    assert (record["thing"], record["readings"][0]["seq"]) == ("box-a", 1)
    assert kit.wait_for(lambda: procs.dead_letters(), 10)
    (letter,) = procs.dead_letters()
    assert (letter["topic"], letter["reason"]) == ("energy/consumption/box-a", "not_encodable")
    assert letter["payload"].encode() == POISON
    assert bridge.poll() is None, "the bridge exited"
