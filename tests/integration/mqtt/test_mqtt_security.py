"""Mutual TLS, the ACL and the policy of the local broker, as IoT Core's certificates and policy behave."""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device import certs
from device.certs import CertLayout
from devstack import broker as broker_lib

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

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
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

    def on_message(c, userdata, message) -> None:
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

    def on_publish(c, userdata, mid, reason_code, properties) -> None:
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


# -- the broker's policy, as IoT Core's: client id = certificate CN, no retained, a CRL --------


def connected_client(
    cert_dir: Path, port: int, *, identity: str, client_id: str, clean_session: bool = True
) -> tuple[mqtt.Client, list[mqtt.MQTTMessage], list[bool]]:
    """A connected, looping MQTT 3.1.1 client; returns it, its messages and its session flags."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean_session
    )
    layout = CertLayout(cert_dir)
    ident = layout.bridge if identity == "bridge" else layout.device(identity)
    client.tls_set(
        str(layout.ca.cert_path), str(ident.cert_path), str(ident.key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT
    )
    messages: list[mqtt.MQTTMessage] = []
    sessions: list[bool] = []
    up = threading.Event()

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            sessions.append(bool(flags.session_present))
            up.set()

    client.on_connect = on_connect
    client.on_message = lambda c, userdata, message: messages.append(message)
    client.connect("localhost", port, keepalive=10)
    client.loop_start()
    assert up.wait(5), f"{identity} as {client_id} could not connect"
    return client, messages, sessions


def subscribe(client: mqtt.Client) -> None:
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.subscribe("energy/consumption/+", qos=1)
    assert done.wait(5)


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_a_box_using_the_bridges_client_id_leaves_the_bridges_session_alone(broker, cert_dir: Path) -> None:
    bridge, _, _ = connected_client(
        cert_dir, broker.port, identity="bridge", client_id="wattstream-bridge", clean_session=False
    )
    subscribe(bridge)
    close(bridge)
    # box-0001's certificate with the bridge's client id, and a clean session: on a broker that
    # takes the client id as given, this ends the bridge's persistent session and its queue.
    intruder, _, _ = connected_client(cert_dir, broker.port, identity="box-0001", client_id="wattstream-bridge")
    box, _, _ = connected_client(cert_dir, broker.port, identity="box-a", client_id="box-a")
    for n in range(3):
        box.publish("energy/consumption/box-a", f'{{"n": {n}}}'.encode(), qos=1).wait_for_publish(5)
    close(box)
    close(intruder)

    bridge, messages, sessions = connected_client(
        cert_dir, broker.port, identity="bridge", client_id="wattstream-bridge", clean_session=False
    )
    deadline = time.monotonic() + 10
    while len(messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    close(bridge)
    assert sessions == [True]
    assert [m.payload for m in messages] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']


def test_a_retained_publish_is_neither_stored_nor_delivered(broker, cert_dir: Path) -> None:
    box, _, _ = connected_client(cert_dir, broker.port, identity="box-a", client_id="box-a")
    gone = threading.Event()
    box.on_disconnect = lambda *args: gone.set()
    info = box.publish("energy/consumption/box-a", b'{"retained": true}', qos=1, retain=True)
    # retain_available false: the broker closes the connection (MQTT 5: reason 0x9A) unacked
    assert gone.wait(5)
    assert not info.is_published()
    box.loop_stop()

    watcher, messages, _ = connected_client(cert_dir, broker.port, identity="bridge", client_id="wattstream-bridge")
    subscribe(watcher)
    # A broker sends retained messages right after the SUBACK: once this marker arrives, any
    # retained message would have arrived before it.
    marker, _, _ = connected_client(cert_dir, broker.port, identity="box-b", client_id="box-b")
    marker.publish("energy/consumption/box-b", b'{"marker": true}', qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while not messages and time.monotonic() < deadline:
        time.sleep(0.05)
    close(marker)
    close(watcher)
    assert [(m.topic, m.payload) for m in messages] == [("energy/consumption/box-b", b'{"marker": true}')]


def test_a_revoked_certificate_cannot_connect_after_sighup(tmp_path: Path) -> None:
    if broker_lib.mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    root = tmp_path / "certs"
    certs.init_authority(root)
    for thing in ("box-a", "box-b"):
        certs.issue_device(root, thing)
    layout = CertLayout(root)
    running = broker_lib.start(tmp_path / "mosquitto", root)
    try:
        assert can_connect(root, root, "box-a", running.port)
        revoked = certs.revoke(root, "box-a")
        # Mosquitto 2.0.11 reads the CRL when it starts and on SIGHUP, not when the file changes.
        assert connects_with(root, revoked.cert_path, revoked.key_path, "box-a", running.port)
        broker_lib.reload(running)
        deadline = time.monotonic() + 5
        refused = False
        while not refused and time.monotonic() < deadline:
            refused = not connects_with(root, revoked.cert_path, revoked.key_path, "box-a", running.port)
        assert refused, "the revoked certificate still connects"
        assert can_connect(root, root, "box-b", running.port)
        certs.issue_device(root, "box-a")  # a new certificate for the same thing works
        assert layout.device("box-a").cert_path.exists()
        assert can_connect(root, root, "box-a", running.port)
    finally:
        broker_lib.stop(running)


def connects_with(ca_dir: Path, cert_path: Path, key_path: Path, client_id: str, port: int) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.tls_set(
        str(CertLayout(ca_dir).ca.cert_path), str(cert_path), str(key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT
    )
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure else connected.set()
    try:
        client.connect("localhost", port, keepalive=10)
    except (ssl.SSLError, OSError):
        return False
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not connected.is_set():
        if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
            return False
    client.disconnect()
    return connected.is_set()
