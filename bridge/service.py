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
- A message the rule cannot evaluate (see ``bridge.rule``), or whose ``on_message`` raised, is
  written to the dead-letter file (``bridge.deadletter``) and acked only once that write
  returned: every acked message is on the stream or in the dead-letter file.

Threads: paho's network thread receives (``on_message`` only evaluates the rule and queues);
``run`` batches, puts, dead-letters and acks from the calling thread. An exception must never
leave a paho callback: paho would end its network thread and the bridge would idle while the
broker queues for it forever. So every callback is guarded: an exception is counted
(``wattstream_bridge_callback_errors_total{callback}``) and logged once
(``bridge_callback_failed``); in ``on_message`` the message is dead-lettered; in any other
callback the connection's state can no longer be trusted and ``run`` raises ``BridgeError``.
``run`` also raises when paho's network thread ended anyway, so that the process exits non-zero
and its supervisor (compose, ECS) starts it again: the persistent session loses nothing.
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge import metrics
from bridge.deadletter import DeadLetter, DeadLetterError, DeadLetterFile
from bridge.kinesis import KinesisError, KinesisWriter, Record
from bridge.rule import TOPIC_FILTER, RuleFailed, evaluate
from readings.errors import WattstreamError

log = structlog.get_logger("bridge")

SESSION_EXPIRY_S = 7 * 24 * 3600
DEFAULT_DEAD_LETTER_DIR = Path(".local/bridge/dead-letter")
MAX_ERROR_CHARS = 300


class BridgeError(WattstreamError):
    """The bridge cannot go on safely (a callback failed, paho's network thread ended)."""


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
    dead_letter_dir: Path = DEFAULT_DEAD_LETTER_DIR


@dataclass(frozen=True, slots=True)
class Incoming:
    """One received message: either the rule's record or the dead letter to write for it."""

    mid: int
    qos: int
    generation: int
    thing: str
    record: bytes | None
    dead_letter: DeadLetter | None = None


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
        self.dead_letters = DeadLetterFile(config.dead_letter_dir)
        self._generation = 0
        self._connected = threading.Event()
        self._fatal: str | None = None  # set by a failed callback other than on_message
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

    # -- network thread: every callback is guarded (see the module docstring) ---------------

    def _callback_failed(self, callback: str, exc: BaseException) -> None:
        """Count and log a callback's exception; outside on_message, make ``run`` stop."""
        try:
            metrics.CALLBACK_ERRORS.labels(callback=callback).inc()
            log.error("bridge_callback_failed", callback=callback, error=_error_text(exc))
        finally:
            if callback != "on_message" and self._fatal is None:
                self._fatal = f"{callback} raised {_error_text(exc)}"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            self._handle_connect(client, flags, reason_code)
        except Exception as exc:  # noqa: BLE001 - an exception here would end paho's thread
            self._callback_failed("on_connect", exc)

    def _handle_connect(self, client: mqtt.Client, flags: Any, reason_code: Any) -> None:
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
        try:
            granted = [int(getattr(rc, "value", rc)) for rc in reason_codes]
            if any(code >= 0x80 for code in granted):
                log.error("bridge_subscribe_refused", topic=TOPIC_FILTER, reason_codes=granted)
            else:
                log.info("bridge_subscribed", topic=TOPIC_FILTER, qos=granted)
        except Exception as exc:  # noqa: BLE001 - an exception here would end paho's thread
            self._callback_failed("on_subscribe", exc)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()
        try:
            if not self.stop_event.is_set():
                log.warning("bridge_disconnected", reason=str(reason_code))
        except Exception as exc:  # noqa: BLE001 - an exception here would end paho's thread
            self._callback_failed("on_disconnect", exc)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        generation = self._generation
        try:
            self._inbox.put(self._receive(message, generation))
        except Exception as exc:  # noqa: BLE001 - an exception here would end paho's thread
            self._callback_failed("on_message", exc)
            try:
                self._inbox.put(self._callback_dead_letter(message, generation, exc))
            except Exception as again:  # noqa: BLE001 - not even the dead letter could be made
                # Unacked, the message comes again after the next reconnect; stop so there is one.
                self._callback_failed("on_message_dead_letter", again)

    def _receive(self, message: mqtt.MQTTMessage, generation: int) -> Incoming:
        received_ms = self.clock()
        metrics.MESSAGES_IN.inc()
        topic = message.topic
        thing = topic.rsplit("/", 1)[-1]
        payload = bytes(message.payload)
        outcome = evaluate(topic, payload, received_ms)
        if isinstance(outcome, RuleFailed):
            letter = DeadLetter(topic, message.mid, received_ms, outcome.reason, payload)
            return Incoming(message.mid, message.qos, generation, thing, None, letter)
        return Incoming(message.mid, message.qos, generation, thing, outcome)

    def _callback_dead_letter(self, message: mqtt.MQTTMessage, generation: int, exc: Exception) -> Incoming:
        # Only what cannot fail: the clock or the topic's decoding may be what raised.
        try:
            received_ms = int(self.clock())
        except Exception:  # noqa: BLE001 - a broken injected clock; the wall clock instead
            received_ms = wall_ms()
        topic = bytes(message._topic).decode("utf-8", "replace")  # paho decodes strictly
        letter = DeadLetter(
            topic, message.mid, received_ms, "callback_error", bytes(message.payload), error=_error_text(exc)
        )
        return Incoming(message.mid, message.qos, generation, topic.rsplit("/", 1)[-1], None, letter)

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

    def _dead_letter_until_written(self, letters: list[DeadLetter]) -> None:
        delay_s = 0.5
        while True:
            try:
                self.dead_letters.write(letters)
                return
            except DeadLetterError as exc:
                # As with Kinesis: unacked, the messages stay with the broker until the disk is back.
                log.error("dead_letter_write_failed", messages=len(letters), error=str(exc)[:300], retry_in_s=delay_s)
                if self.stop_event.wait(delay_s):
                    raise
                delay_s = min(delay_s * 2, 30.0)

    def _dead_letter(self, live: list[Incoming]) -> None:
        letters = [m.dead_letter for m in live if m.dead_letter is not None]
        if not letters:
            return
        for letter in letters:
            if letter.reason != "callback_error":  # the callback logged and counted that one
                metrics.RULE_FAILED.labels(reason=letter.reason).inc()
                log.warning(
                    "rule_failed",
                    topic=letter.topic,
                    mid=letter.mid,
                    reason=letter.reason,
                    payload_bytes=len(letter.payload),
                )
        self._dead_letter_until_written(letters)
        for letter in letters:
            metrics.DEAD_LETTERS.labels(reason=letter.reason).inc()

    def process(self, batch: list[Incoming]) -> None:
        """Put the rule's records of ``batch`` on the stream, dead-letter the rest, then ack all."""
        current = self._generation
        live = [m for m in batch if m.generation == current]
        if len(live) < len(batch):
            metrics.STALE.inc(len(batch) - len(live))
            log.info("stale_messages_dropped", count=len(batch) - len(live))
        records = [Record(m.record, m.thing) for m in live if m.record is not None]
        self._dead_letter(live)
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

    def _check_network(self, network: threading.Thread | None) -> None:
        if self._fatal is not None:
            log.error("bridge_failed", reason=self._fatal)
            raise BridgeError(f"the bridge stopped: {self._fatal}")
        if network is None or not network.is_alive():
            log.error("bridge_failed", reason="network_thread_ended")
            raise BridgeError("paho's network thread ended: nothing would be received any more")

    def run(self) -> None:
        """Connect and forward until ``stop_event`` is set; the last batch is finished first.

        Raises ``BridgeError`` when a callback other than ``on_message`` failed or paho's
        network thread ended (see the module docstring); unacked messages stay with the broker.
        """
        self._client.connect_async(
            self.config.host, self.config.port, keepalive=self.config.keepalive_s, **self._connect_kwargs()
        )
        self._client.loop_start()
        # paho (pinned 2.2.0) keeps its network thread in a private attribute, and offers no
        # other way to learn that the thread is gone; a test kills it to keep this honest.
        network: threading.Thread | None = getattr(self._client, "_thread", None)
        try:
            while not self.stop_event.is_set():
                self._check_network(network)
                batch = self._collect()
                if batch:
                    self.process(batch)
        except (KinesisError, DeadLetterError):
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


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
