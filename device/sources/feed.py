"""Devices that send on their own schedule (MQTT, a serial line) behind the box's ``read``.

The box reads every ``read_interval_s``; a Tasmota sends every ``TelePeriod``, a DSMR meter
every 1 or 10 s, a Zigbee plug when a value changes. ``PushedMeter`` sits between them:

- the transport's thread hands every decoded sample to ``offer`` and every bad message to
  ``fail`` (both thread-safe; the thread itself never raises);
- ``read`` returns the newest sample offered since the previous read (older ones in between
  are dropped: the register is cumulative, so no energy is lost, only resolution), else raises
  the newest failure since then, else ``MeterError("timeout")`` when nothing arrived for
  ``silent_after_s``, else ``NoNewReading`` (the box skips the interval quietly);
- a sample whose ``ts_ms`` is not after the last one returned is dropped: a box's time base
  never moves backwards (a retained or repeated message, a device clock stepping back).

``MqttFeed`` is the LAN-broker transport: its own paho client (plain or TLS, user and password
from the URL), clean session, QoS 0 subscriptions renewed on every reconnect, payloads above
``max_bytes`` refused before parsing.
"""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from device.meters import MeterError, NoNewReading
from device.sources.document import MAX_DOCUMENT_BYTES
from device.spool import Sample

log = structlog.get_logger("device.sources")

DEFAULT_SILENT_AFTER_S = 900.0
"""Longer than any default report period (Tasmota's TelePeriod is 300 s at most by default)."""

Handler = Callable[[str, bytes, int], Sample | None]
"""(topic, payload, received_ms) -> a sample, None for a message without a register, or MeterError."""


class PushedMeter:
    """A ``MeterSource`` fed by a transport thread (see module docstring)."""

    def __init__(self, name: str, *, silent_after_s: float = DEFAULT_SILENT_AFTER_S) -> None:
        self.name = name
        self.silent_after_ms = int(silent_after_s * 1000)
        self._lock = threading.Lock()
        self._pending: Sample | None = None
        self._error: MeterError | None = None
        self._last_received_ms: int | None = None
        self._first_read_ms: int | None = None
        self._last_ts_ms: int | None = None
        self.offered = 0
        self.failed = 0
        self._closers: list[Callable[[], None]] = []
        self.transport: Any = None
        """What feeds this meter (``MqttFeed``, the DSMR ``SerialLine``), for tests and diagnostics."""

    def offer(self, sample: Sample, received_ms: int) -> None:
        with self._lock:
            self.offered += 1
            self._last_received_ms = received_ms
            if self._last_ts_ms is not None and sample.ts_ms <= self._last_ts_ms:
                return
            if self._pending is None or sample.ts_ms > self._pending.ts_ms:
                self._pending = sample

    def fail(self, error: MeterError, received_ms: int) -> None:
        with self._lock:
            self.failed += 1
            self._error = error
            # A device that sends garbage is not silent; its garbage is what the box reports.
            self._last_received_ms = received_ms

    def read(self, now_ms: int) -> Sample:
        with self._lock:
            sample, error = self._pending, self._error
            self._pending = self._error = None
            if self._first_read_ms is None:
                self._first_read_ms = now_ms
            if sample is not None:
                self._last_ts_ms = sample.ts_ms
                return sample
            heard_ms = self._last_received_ms if self._last_received_ms is not None else self._first_read_ms
        if error is not None:
            raise error
        if now_ms - heard_ms > self.silent_after_ms:
            raise MeterError("timeout", f"{self.name}: nothing received for {(now_ms - heard_ms) / 1000:.0f} s")
        raise NoNewReading(f"{self.name}: nothing new since the last read")

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in self._closers:
            closer()


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A LAN broker from a meter URL: ``mqtt://user:password@host:1883`` or ``mqtts://…``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None


class MqttFeed:
    """Subscribes ``topics`` on a LAN broker and feeds ``handler``'s samples to ``meter``."""

    def __init__(
        self,
        broker: BrokerAddress,
        topics: list[str],
        handler: Handler,
        meter: PushedMeter,
        *,
        clock_ms: Callable[[], int],
        max_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.broker, self.topics, self.handler, self.meter = broker, topics, handler, meter
        self.clock_ms, self.max_bytes = clock_ms, max_bytes
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        """Set once the broker acknowledged the subscriptions of the current connection."""
        client_id = f"wattstream-{uuid.uuid4().hex[:12]}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self.client.tls_set(ca_certs=broker.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def start(self) -> MqttFeed:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self.meter.on_close(self.stop)
        self.meter.transport = self
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # paho's callbacks run on its network thread: an exception there would end it, so each
    # one catches its own (the message becomes the meter's failure, never the box's crash).
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("meter_broker_refused", meter=self.meter.name, reason=str(reason))
            return
        client.subscribe([(topic, 0) for topic in self.topics])
        self.connected.set()
        log.info("meter_broker_connected", meter=self.meter.name, host=self.broker.host, topics=self.topics)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        log.warning("meter_broker_disconnected", meter=self.meter.name, reason=str(reason))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        received_ms = self.clock_ms()
        try:
            payload = bytes(message.payload)
            if len(payload) > self.max_bytes:
                raise MeterError("garbage", f"{message.topic}: {len(payload)} bytes, more than {self.max_bytes}")
            sample = self.handler(message.topic, payload, received_ms)
        except MeterError as exc:
            self.meter.fail(exc, received_ms)
            return
        except Exception as exc:  # noqa: BLE001 - a parser bug must not end paho's thread
            self.meter.fail(MeterError("garbage", f"{message.topic}: {type(exc).__name__}: {exc}"), received_ms)
            return
        if sample is not None:
            self.meter.offer(sample, received_ms)
