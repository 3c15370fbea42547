"""The box's MQTT connection: QoS 1 over mutual TLS, reconnect with backoff and jitter.

One ``Publisher`` is one MQTT session whose client id is the thing name (IoT Core requires it,
and the broker ACL is per certificate identity, so N virtual boxes need N connections).

Threads: a network thread owned by the publisher runs paho's loop and the reconnects, and it
alone touches the paho client. (Paho writes to the socket from the caller's thread when it
runs without ``loop_start``; two threads on one TLS connection corrupt it.) The box calls
``publish``, which only queues the message and returns a token, and ``take_acks``, which
returns the tokens whose PUBACK arrived. The network thread maps paho's message ids to
tokens, so the box never sees an MQTT mid and mids may be reused freely.

Paho keeps unacknowledged QoS 1 messages across reconnects of the same process and sends them
again (DUP) after the new CONNACK, so an in-flight message is never forgotten while the process
lives; after a crash the spool sends them again.
"""

from __future__ import annotations

import queue
import random
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from device import metrics
from readings.errors import DeviceError

log = structlog.get_logger("device.publisher")

Protocol = Literal["3.1.1", "5"]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    client_id: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    protocol: Protocol = "3.1.1"
    keepalive_s: int = 60
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_inflight: int = 20
    connect_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Ack:
    """The broker's answer to one published message."""

    token: int
    accepted: bool
    """False when an MQTT 5 broker refused the message (e.g. 0x87 not authorized)."""


def backoff_s(failures: int, *, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at ``max_s``.

    The jitter spreads a fleet's reconnects after a broker outage; the fixed half keeps one box
    from hammering a broker that refuses it.
    """
    ceiling = min(max_s, min_s * 2 ** max(0, failures - 1))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


class Publisher:
    """One MQTT session of one box (see module docstring)."""

    def __init__(self, config: MqttConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._acks: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[tuple[int, str, bytes]] = queue.SimpleQueue()
        self._tokens: dict[int, int] = {}  # paho mid -> token; network thread only
        self._next_token = 0
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._labels = {"device_id": config.client_id}
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        for path in (cfg.ca_file, cfg.cert_file, cfg.key_file):
            if not Path(path).exists():
                raise DeviceError(f"missing TLS file {path} (see `wattstream certs --help`)")
        if cfg.protocol == "5":
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv311, clean_session=True
            )
        client.tls_set(
            ca_certs=str(cfg.ca_file),
            certfile=str(cfg.cert_file),
            keyfile=str(cfg.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.max_inflight_messages_set(cfg.max_inflight)
        client.max_queued_messages_set(0)
        client.connect_timeout = cfg.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- callbacks (network thread) ---------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("mqtt_connect_refused", device_id=self.config.client_id, reason=str(reason_code))
            metrics.CONNECT_FAILURES.labels(**self._labels).inc()
            return
        self._failures = 0
        self._connected.set()
        metrics.CONNECTED.labels(**self._labels).set(1)
        log.info("mqtt_connected", device_id=self.config.client_id, host=self.config.host, port=self.config.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        metrics.CONNECTED.labels(**self._labels).set(0)
        if was_connected and not self._stopping.is_set():
            log.warning("mqtt_disconnected", device_id=self.config.client_id, reason=str(reason_code))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        token = self._tokens.pop(mid, None)
        if token is None:
            return
        accepted = not reason_code.is_failure
        if not accepted:
            log.error("mqtt_publish_refused", device_id=self.config.client_id, mid=mid, reason=str(reason_code))
        self._acks.put(Ack(token, accepted))

    # -- network thread ---------------------------------------------------------------------

    _failures = 0

    def _wait_backoff(self) -> None:
        self._failures += 1
        delay_s = backoff_s(
            self._failures, min_s=self.config.reconnect_min_s, max_s=self.config.reconnect_max_s, rng=self._rng
        )
        log.info("mqtt_reconnect_scheduled", device_id=self.config.client_id, delay_s=round(delay_s, 2))
        self._stopping.wait(delay_s)

    def _run(self) -> None:
        cfg = self.config
        socket_open = False
        while not self._stopping.is_set():
            if not socket_open:
                try:
                    self._client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
                    socket_open = True
                except (OSError, ssl.SSLError, ValueError) as exc:
                    metrics.CONNECT_FAILURES.labels(**self._labels).inc()
                    log.warning("mqtt_connect_failed", device_id=cfg.client_id, error=str(exc)[:200])
                    self._wait_backoff()
                    continue
            self._send_outbox()
            rc = self._client.loop(timeout=0.01)
            if rc != mqtt.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                socket_open = False
                self._connected.clear()
                metrics.CONNECTED.labels(**self._labels).set(0)
                self._wait_backoff()

    def _send_outbox(self) -> None:
        while True:
            try:
                token, topic, payload = self._outbox.get_nowait()
            except queue.Empty:
                return
            info = self._client.publish(topic, payload, qos=1)
            # NO_CONN / CONN_LOST: paho keeps the QoS 1 message and sends it after the reconnect
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST):
                log.error("mqtt_publish_failed", device_id=self.config.client_id, error=mqtt.error_string(info.rc))
                self._acks.put(Ack(token, False))
                continue
            self._tokens[int(info.mid)] = token

    # -- the box's side ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.config.client_id}", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def publish(self, topic: str, payload: bytes) -> int:
        """Queue ``payload`` for QoS 1; returns its token (its PUBACK comes via ``take_acks``)."""
        self._next_token += 1
        self._outbox.put((self._next_token, topic, payload))
        metrics.MESSAGES_PUBLISHED.labels(**self._labels).inc()
        metrics.MESSAGE_BYTES.labels(**self._labels).observe(len(payload))
        return self._next_token

    def take_acks(self) -> list[Ack]:
        """Every acknowledgement received since the last call."""
        acks: list[Ack] = []
        while True:
            try:
                acks.append(self._acks.get_nowait())
            except queue.Empty:
                return acks

    def stop(self) -> None:
        """Disconnect and end the network thread; unacknowledged messages stay in the spool."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._client.disconnect()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            log.debug("disconnect_failed", error=repr(exc))
