"""The bridge: MQTT subscription -> topic rule -> Kinesis, acknowledging only what Kinesis holds.

Delivery contract (the local twin of "IoT Core rule with a Kinesis action"):

- A persistent session (MQTT 3.1.1 ``clean_session=False`` / MQTT 5 session expiry) with
  QoS 1: while the bridge is down the broker queues every message for it.
- ``manual_ack``: the PUBACK of a message is sent only after PutRecords accepted its record.
  A bridge killed between the two leaves the message unacknowledged and the broker delivers it
  again: at-least-once into the stream, duplicates deduped downstream on (device_id, seq).
- A message that arrived on a connection that has since dropped is *not* acknowledged on the
  new one: the broker redelivers it under the same id, and acking the old copy could
  acknowledge a different message that reused the id. It is dropped locally (counted as
  stale) and handled when it comes again.
- A message the rule cannot evaluate (see ``bridge.rule``) is logged, counted and acked.

Threads: paho's network thread receives (``on_message`` only queues); ``run`` batches, puts
and acks from the calling thread.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from bridge import metrics
from bridge.kinesis import KinesisError, KinesisWriter, Record
from bridge.rule import TOPIC_FILTER, apply_rule

log = structlog.get_logger("bridge")

SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str = "wattstream-bridge"
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: int = 30
    batch_max_records: int = 500
    batch_max_wait_s: float = 0.2
    reconnect_max_s: int = 10


@dataclass(frozen=True, slots=True)
class Incoming:
    mid: int
    qos: int
    generation: int
    thing: str
    record: bytes | None


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Bridge:
    """See the module docstring. ``clock`` gives ``received_ms`` (the rule's ``timestamp()``)."""

    def __init__(self, config: BridgeConfig, writer: KinesisWriter, *, clock: Callable[[], int] = wall_ms) -> None:
        self.config = config
        self.writer = writer
        self.clock = clock
        self.stop_event = threading.Event()
        self._inbox: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._generation = 0
        self._connected = threading.Event()
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        if cfg.protocol == "5":
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        client.tls_set(
            ca_certs=str(cfg.ca_file),
            certfile=str(cfg.cert_file),
            keyfile=str(cfg.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.reconnect_delay_set(1, cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- network thread ---------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("bridge_connect_refused", reason=str(reason_code))
            return
        self._generation += 1
        self._connected.set()
        client.subscribe(TOPIC_FILTER, qos=1)
        log.info(
            "bridge_connected",
            host=self.config.host,
            port=self.config.port,
            session_present=bool(getattr(flags, "session_present", False)),
            generation=self._generation,
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        granted = [int(getattr(rc, "value", rc)) for rc in reason_codes]
        if any(code >= 0x80 for code in granted):
            log.error("bridge_subscribe_refused", topic=TOPIC_FILTER, reason_codes=granted)
        else:
            log.info("bridge_subscribed", topic=TOPIC_FILTER, qos=granted)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()
        if not self.stop_event.is_set():
            log.warning("bridge_disconnected", reason=str(reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received_ms = self.clock()
        metrics.MESSAGES_IN.inc()
        topic = message.topic
        record = apply_rule(topic, message.payload, received_ms)
        thing = topic.rsplit("/", 1)[-1]
        self._inbox.put(Incoming(message.mid, message.qos, self._generation, thing, record))

    # -- the batching thread ----------------------------------------------------------------

    def _collect(self) -> list[Incoming]:
        """Wait for a first message, then gather up to the batch limits."""
        try:
            first = self._inbox.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.batch_max_wait_s
        while len(batch) < self.config.batch_max_records:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _put_until_accepted(self, records: list[Record]) -> None:
        delay_s = 0.5
        while True:
            try:
                self.writer.put_all(records)
                return
            except KinesisError as exc:
                # Nothing is acked, so nothing is lost: keep trying (the broker holds the rest).
                log.error("kinesis_unavailable", records=len(records), error=str(exc)[:300], retry_in_s=delay_s)
                if self.stop_event.wait(delay_s):
                    raise
                delay_s = min(delay_s * 2, 30.0)

    def process(self, batch: list[Incoming]) -> None:
        """Put the rule's records of ``batch`` on the stream, then ack the messages."""
        current = self._generation
        live = [m for m in batch if m.generation == current]
        if len(live) < len(batch):
            metrics.STALE.inc(len(batch) - len(live))
            log.info("stale_messages_dropped", count=len(batch) - len(live))
        records = [Record(m.record, m.thing) for m in live if m.record is not None]
        for m in live:
            if m.record is None:
                metrics.RULE_FAILED.inc()
                log.warning("rule_failed", thing=m.thing, mid=m.mid, reason="payload is not a JSON object")
        if records:
            metrics.BATCH_RECORDS.observe(len(records))
            self._put_until_accepted(records)
        if self._generation != current:
            # The connection dropped during the put: these ids belong to the old connection.
            metrics.STALE.inc(len(live))
            return
        for m in live:
            self._client.ack(m.mid, m.qos)
        metrics.ACKS.inc(len(live))
        if records:
            log.debug("batch_forwarded", records=len(records), acks=len(live))

    def run(self) -> None:
        """Connect and forward until ``stop_event`` is set; the last batch is finished first."""
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s,
                                   **self._connect_kwargs())
        self._client.loop_start()
        try:
            while not self.stop_event.is_set():
                batch = self._collect()
                if batch:
                    self.process(batch)
        except KinesisError:
            log.warning("bridge_stopped_with_unacked_messages")
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            log.info("bridge_stopped")

    def _connect_kwargs(self) -> dict[str, Any]:
        if self.config.protocol != "5":
            return {}
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        return {"clean_start": False, "properties": props}

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)
