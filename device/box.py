"""The box: meter -> spool -> edge batch -> MQTT, driven by ``tick(now_ms)``.

Order of work in one tick, and why:

1. Apply PUBACKs: delete the acknowledged rows first, so the spool count (and its cap) sees
   the freshest state.
2. Read the meter if a reading is due, and write the reading to the spool *before* anything
   else sees it. A failing meter is logged and counted; the box keeps ticking.
3. While connected and below ``max_inflight``, pack the oldest unsent readings and publish
   them when the batch rule says so. After an outage the backlog goes out as full messages.

``tick`` never blocks on the network; ``device run`` calls it from a loop, ``device simulate``
calls the ticks of N boxes from one loop. Times are the box clock's ``now_ms`` (simulated
time may run faster than the wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from device import metrics
from device.batching import BatchPolicy, pack
from device.meters import MeterError, MeterSource, NoNewReading
from device.publisher import Publisher
from device.spool import Spool
from readings.errors import DeviceError
from readings.models import topic_for

log = structlog.get_logger("device.box")


@dataclass(slots=True)
class Inflight:
    first_seq: int
    last_seq: int
    count: int


@dataclass(slots=True)
class BoxStats:
    readings: int = 0
    meter_errors: int = 0
    messages_published: int = 0
    messages_acked: int = 0
    readings_acked: int = 0
    payload_bytes_acked: int = 0


class Box:
    """One IoT box (see module docstring)."""

    def __init__(
        self,
        device_id: str,
        *,
        meter: MeterSource,
        spool: Spool,
        publisher: Publisher,
        rule: BatchPolicy,
        read_interval_ms: int,
        max_inflight: int = 20,
        first_read_ms: int | None = None,
        max_catch_up: int = 100,
        topic: str | None = None,
    ) -> None:
        if read_interval_ms <= 0:
            raise DeviceError("read interval must be > 0")
        self.device_id = device_id
        self.topic = topic or topic_for(device_id)
        self.meter, self.spool, self.publisher, self.rule = meter, spool, publisher, rule
        self.read_interval_ms = read_interval_ms
        self.max_inflight = max_inflight
        self.max_catch_up = max_catch_up
        self.next_read_ms = first_read_ms
        self.stats = BoxStats()
        self._inflight: dict[int, Inflight] = {}
        self._payload_bytes: dict[int, int] = {}
        self._last_sent_seq = 0
        self._labels = {"device_id": device_id}

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def drained(self) -> bool:
        """Nothing left in the spool and nothing awaiting a PUBACK."""
        return not self._inflight and len(self.spool) == 0

    def tick(self, now_ms: int, *, read: bool = True) -> None:
        self.apply_acks()
        if read:
            self.read_due(now_ms)
        self.publish_ready(now_ms)

    def apply_acks(self) -> None:
        for ack in self.publisher.take_acks():
            sent = self._inflight.pop(ack.token, None)
            size = self._payload_bytes.pop(ack.token, 0)
            if sent is None:
                continue  # a message of an earlier mapping (cannot happen within one process)
            if not ack.accepted:
                # The broker refused it (MQTT 5 only): keep the rows and send them again.
                self._last_sent_seq = min(self._last_sent_seq, sent.first_seq - 1)
                continue
            self.spool.delete(sent.first_seq, sent.last_seq)
            self.stats.messages_acked += 1
            self.stats.readings_acked += sent.count
            self.stats.payload_bytes_acked += size
            metrics.MESSAGES_ACKED.labels(**self._labels).inc()
            metrics.READINGS_ACKED.labels(**self._labels).inc(sent.count)

    def read_due(self, now_ms: int) -> None:
        """Read the meter for every interval that has come due (at most ``max_catch_up``)."""
        if self.next_read_ms is None:
            self.next_read_ms = now_ms
        done = 0
        while self.next_read_ms <= now_ms and done < self.max_catch_up:
            self._read_one(self.next_read_ms)
            self.next_read_ms += self.read_interval_ms
            done += 1
        if self.next_read_ms <= now_ms:
            # Too far behind (a suspended process, an overloaded simulator): skip, don't spiral.
            skipped = (now_ms - self.next_read_ms) // self.read_interval_ms + 1
            log.warning("readings_skipped", device_id=self.device_id, intervals=skipped)
            self.next_read_ms += skipped * self.read_interval_ms

    def _read_one(self, ts_ms: int) -> None:
        try:
            sample = self.meter.read(ts_ms)
        except NoNewReading:
            return  # a pushed-to source with nothing newer since the last read: not a failure
        except MeterError as exc:
            self.stats.meter_errors += 1
            metrics.METER_ERRORS.labels(device_id=self.device_id, reason=exc.reason).inc()
            log.error("meter_read_failed", device_id=self.device_id, reason=exc.reason, error=str(exc)[:300])
            return
        metrics.METER_READS.labels(**self._labels).inc()
        self.spool.append(sample)
        self.stats.readings += 1

    def publish_ready(self, now_ms: int, *, force: bool = False) -> int:
        """Publish every ready batch the in-flight window allows; returns messages published.

        ``force`` sends a batch even if the rule would still wait (used when shutting down).
        """
        published = 0
        while self.publisher.connected and len(self._inflight) < self.max_inflight:
            waiting = self.spool.pending(after_seq=self._last_sent_seq, limit=self.rule.max_readings)
            if not waiting:
                break
            packed = pack(self.device_id, waiting, max_readings=self.rule.max_readings, max_bytes=self.rule.max_bytes)
            if not force and not self.rule.ready(waiting, now_ms, full=packed.full):
                break
            token = self.publisher.publish(self.topic, packed.payload)
            self._inflight[token] = Inflight(packed.first_seq, packed.last_seq, packed.count)
            self._payload_bytes[token] = len(packed.payload)
            self._last_sent_seq = packed.last_seq
            self.stats.messages_published += 1
            published += 1
        return published

    def close(self) -> None:
        self.publisher.stop()
        self.meter.close()
        self.spool.close()
