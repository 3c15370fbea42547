"""The bridge's paho callbacks never end paho's thread; what fails is dead-lettered, then acked.

No broker here: the callbacks are called as paho's network thread would call them, and the
acks paho would send are recorded. tests/integration/mqtt/ runs the same against Mosquitto.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import REGISTRY

from bridge.deadletter import MAX_PAYLOAD_BYTES
from bridge.kinesis import KinesisWriter
from bridge.service import Bridge, BridgeConfig, BridgeError
from device.certs import init_authority
from devstack.net import free_port

RECEIVED_MS = 1_795_000_000_123
POISON = b'{"x":' + b"[" * 300 + b"]" * 300 + b"}"
VALID = b'{"v": 1, "device_id": "box-a", "readings": []}'


@dataclass
class FakeKinesis:
    stored: list[tuple[bytes, str]] = field(default_factory=list)

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.stored.extend((r["Data"], r["PartitionKey"]) for r in Records)
        return {"Records": [{"SequenceNumber": "1", "ShardId": "s"} for _ in Records]}


@dataclass
class Harness:
    bridge: Bridge
    kinesis: FakeKinesis
    acks: list[int]
    dead_letter_dir: Path

    def receive(self, mid: int, payload: bytes, topic: str = "energy/consumption/box-a") -> None:
        message = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
        message.payload = payload
        message.qos = 1
        self.bridge._on_message(self.bridge._client, None, message)

    def drain(self) -> None:
        while batch := self.bridge._collect():
            self.bridge.process(batch)

    def dead_letters(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for path in sorted(self.dead_letter_dir.glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("certs")
    init_authority(root)
    return root


def make_bridge(cert_dir: Path, tmp_path: Path, clock: Any = lambda: RECEIVED_MS) -> Harness:
    config = BridgeConfig(
        host="127.0.0.1",
        port=free_port(),
        ca_file=cert_dir / "ca.crt",
        cert_file=cert_dir / "bridge.crt",
        key_file=cert_dir / "bridge.key",
        batch_max_wait_s=0.0,
        dead_letter_dir=tmp_path / "dead-letter",
    )
    kinesis = FakeKinesis()
    bridge = Bridge(config, KinesisWriter(kinesis, "stream", sleep=lambda s: None), clock=clock)
    acks: list[int] = []
    bridge._client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[method-assign]
    return Harness(bridge, kinesis, acks, tmp_path / "dead-letter")


@pytest.fixture
def harness(cert_dir: Path, tmp_path: Path) -> Harness:
    return make_bridge(cert_dir, tmp_path)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_poison_message_is_dead_lettered_acked_and_the_next_one_forwarded(harness: Harness) -> None:
    before = metric("wattstream_bridge_rule_failed_total", reason="not_encodable")
    harness.receive(1, POISON)
    harness.receive(2, VALID)
    harness.drain()
    assert harness.acks == [1, 2]
    ((data, key),) = harness.kinesis.stored
    assert (json.loads(data)["thing"], key) == ("box-a", "box-a")
    (letter,) = harness.dead_letters()
    assert letter["topic"] == "energy/consumption/box-a"
    assert (letter["mid"], letter["received_ms"], letter["reason"]) == (1, RECEIVED_MS, "not_encodable")
    assert (letter["payload_encoding"], letter["payload"].encode()) == ("utf-8", POISON)
    assert metric("wattstream_bridge_rule_failed_total", reason="not_encodable") == before + 1


def test_an_exception_inside_the_callback_is_caught_counted_dead_lettered_and_acked(
    cert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken_clock() -> int:
        raise RuntimeError("clock broke")

    h = make_bridge(cert_dir, tmp_path, clock=broken_clock)
    before = metric("wattstream_bridge_callback_errors_total", callback="on_message")
    h.receive(7, VALID)  # must not raise: paho's thread would end
    h.drain()
    assert h.acks == [7]
    assert h.kinesis.stored == []
    (letter,) = h.dead_letters()
    assert (letter["mid"], letter["reason"]) == (7, "callback_error")
    assert "clock broke" in letter["error"]
    assert letter["payload"].encode() == VALID
    assert metric("wattstream_bridge_callback_errors_total", callback="on_message") == before + 1


def test_a_payload_that_is_not_text_is_kept_as_base64(harness: Harness) -> None:
    harness.receive(3, b"\xff\x00\xfe")
    harness.drain()
    (letter,) = harness.dead_letters()
    assert (letter["reason"], letter["payload_encoding"]) == ("not_utf8", "base64")
    assert base64.b64decode(letter["payload"]) == b"\xff\x00\xfe"
    assert harness.acks == [3]


def test_the_dead_letter_payload_is_bounded_at_the_brokers_message_size_limit(harness: Harness) -> None:
    harness.receive(4, b"a" * (MAX_PAYLOAD_BYTES + 10))
    harness.drain()
    (letter,) = harness.dead_letters()
    assert (letter["reason"], letter["truncated"]) == ("not_json", True)
    assert letter["payload_bytes"] == MAX_PAYLOAD_BYTES + 10
    assert len(letter["payload"]) == MAX_PAYLOAD_BYTES


def test_a_message_of_a_dropped_connection_is_neither_dead_lettered_nor_acked(harness: Harness) -> None:
    harness.receive(5, b"not json")
    harness.bridge._generation += 1  # the connection dropped; the broker sends the message again
    harness.drain()
    assert (harness.acks, harness.dead_letters()) == ([], [])


def _run_in_thread(bridge: Bridge) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def target() -> None:
        try:
            bridge.run()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, raised


def test_run_fails_when_pahos_network_thread_dies(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("network thread ended")

    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the death is the point
    harness.bridge._client.loop_forever = die  # type: ignore[method-assign]
    thread, raised = _run_in_thread(harness.bridge)
    thread.join(timeout=5)
    harness.bridge.stop_event.set()  # the old code idles: let its thread go
    assert not thread.is_alive(), "run() kept idling without a network thread"
    assert len(raised) == 1 and isinstance(raised[0], BridgeError)


def test_run_fails_when_another_callback_raised(harness: Harness) -> None:
    class Refusing:
        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("no subscription")

    success = ReasonCode(PacketTypes.CONNACK, identifier=0)
    harness.bridge._on_connect(Refusing(), None, None, success, None)  # must not raise
    thread, raised = _run_in_thread(harness.bridge)
    thread.join(timeout=5)
    harness.bridge.stop_event.set()
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], BridgeError)
    assert "on_connect" in str(raised[0])


def test_the_bridge_command_exits_non_zero_when_run_fails(
    cert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from bridge import service
    from bridge.cli import bridge as bridge_command

    def fail(self: Bridge) -> None:
        raise BridgeError("paho's network thread ended")

    monkeypatch.setattr(service.Bridge, "run", fail)
    # The command's process-wide side effects stay out of the test process.
    monkeypatch.setattr("bridge.cli.configure_logging", lambda level: None)
    monkeypatch.setattr("bridge.cli.signal.signal", lambda *args: None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    args = ["--cert-dir", str(cert_dir), "--port", str(free_port()), "--dead-letter-dir", str(tmp_path / "dl")]
    result = CliRunner().invoke(bridge_command, args)
    assert result.exit_code != 0
    assert "network thread ended" in result.output
