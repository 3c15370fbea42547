"""Mutual TLS and the ACL of the local broker, as IoT Core's certificates and policy behave."""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device.certs import CertLayout

pytestmark = pytest.mark.integration


def client_for(
    cert_dir: Path, ca_dir: Path, *, identity: str | None, client_id: str, protocol: int = mqtt.MQTTv311
) -> tuple[mqtt.Client, threading.Event, list[str]]:
    """A paho client with ``identity``'s certificate (None: no certificate), trusting ``ca_dir``."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    layout, ca = CertLayout(cert_dir), CertLayout(ca_dir).ca.cert_path
    if identity is None:
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    else:
        ident = layout.bridge if identity == "bridge" else layout.device(identity)
        client.tls_set(str(ca), str(ident.cert_path), str(ident.key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    connected = threading.Event()
    outcome: list[str] = []

    def on_connect(c, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        outcome.append(str(reason_code))
        if not reason_code.is_failure:
            connected.set()

    client.on_connect = on_connect
    return client, connected, outcome


def can_connect(cert_dir: Path, ca_dir: Path, identity: str | None, port: int) -> bool:
    client, connected, _ = client_for(cert_dir, ca_dir, identity=identity, client_id=f"probe-{identity}")
    try:
        client.connect("localhost", port, keepalive=10)
    except (ssl.SSLError, OSError):
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not connected.is_set():
        if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
            return False
    client.disconnect()
    return connected.is_set()


def test_own_certificate_connects(broker, cert_dir: Path) -> None:
    assert can_connect(cert_dir, cert_dir, "box-a", broker.port)


def test_client_without_certificate_is_refused(broker, cert_dir: Path) -> None:
    assert not can_connect(cert_dir, cert_dir, None, broker.port)


def test_certificate_of_another_ca_is_refused(broker, cert_dir: Path, foreign_cert_dir: Path) -> None:
    # box-a's name, but signed by a CA the broker does not trust
    assert not can_connect(foreign_cert_dir, cert_dir, "box-a", broker.port)


def test_box_cannot_publish_to_another_boxes_topic(broker, cert_dir: Path) -> None:
    received: list[mqtt.MQTTMessage] = []
    got_marker = threading.Event()
    sub, sub_up, _ = client_for(cert_dir, cert_dir, identity="bridge", client_id="acl-watcher")

    def on_message(c, userdata, message) -> None:  # noqa: ANN001
        received.append(message)
        if message.topic == "energy/consumption/box-a":
            got_marker.set()

    sub.on_message = on_message
    sub.connect("localhost", broker.port)
    sub.loop_start()
    assert sub_up.wait(5)
    sub.subscribe("energy/consumption/+", qos=1)[0]
    time.sleep(0.3)  # SUBACK; the marker below proves ordering, this only avoids a lost race

    pub, pub_up, _ = client_for(cert_dir, cert_dir, identity="box-a", client_id="box-a")
    pub.connect("localhost", broker.port)
    pub.loop_start()
    assert pub_up.wait(5)
    pub.publish("energy/consumption/box-b", b'{"forged": true}', qos=1).wait_for_publish(5)
    # The broker handles one client's publishes in order: once the marker arrives, the forged
    # message would have arrived before it.
    pub.publish("energy/consumption/box-a", b'{"marker": true}', qos=1).wait_for_publish(5)
    assert got_marker.wait(10)
    pub.loop_stop()
    sub.loop_stop()
    assert [m.topic for m in received] == ["energy/consumption/box-a"]


def test_mqtt5_publish_to_foreign_topic_is_refused_with_reason(broker, cert_dir: Path) -> None:
    pub, up, _ = client_for(cert_dir, cert_dir, identity="box-a", client_id="box-a", protocol=mqtt.MQTTv5)
    codes: list[int] = []
    done = threading.Event()

    def on_publish(c, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        codes.append(reason_code.value)
        done.set()

    pub.on_publish = on_publish
    pub.connect("localhost", broker.port)
    pub.loop_start()
    assert up.wait(5)
    pub.publish("energy/consumption/box-b", b"{}", qos=1)
    assert done.wait(5)
    pub.loop_stop()
    assert codes == [0x87]  # Not authorized


def test_spoofed_device_id_arrives_with_the_topic_thing(broker, cert_dir: Path, procs, stream, kinesis, kit) -> None:
    procs.bridge(broker.port, stream)
    pub, up, _ = client_for(cert_dir, cert_dir, identity="box-a", client_id="box-a")
    pub.connect("localhost", broker.port)
    pub.loop_start()
    assert up.wait(5)
    payload = {"v": 1, "device_id": "box-b", "readings": [{"seq": 1, "ts": "2026-11-27T13:00:00Z", "energy_wh": 1.0}]}
    pub.publish("energy/consumption/box-a", json.dumps(payload).encode(), qos=1).wait_for_publish(5)
    pub.loop_stop()

    client = kinesis.client()
    assert kit.wait_for(lambda: kit.read_stream(client, stream), 30)
    (record,) = kit.read_stream(client, stream)
    assert (record["device_id"], record["thing"], record["_partition_key"]) == ("box-b", "box-a", "box-a")
    assert isinstance(record["received_ms"], int)
