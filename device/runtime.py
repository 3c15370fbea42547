"""Wiring: settings -> boxes, the clocks, and the loops of ``device run`` and ``device simulate``.

The loop is the only place that sleeps. It ticks every box, then sleeps until the next reading
is due or ``poll_s`` passed (PUBACKs and reconnects need a look even between readings).

Shutdown (SIGTERM/SIGINT or the end of ``--duration-s``): reading stops, the boxes get up to
``drain_s`` to publish what is spooled and collect the PUBACKs, then they disconnect. What is
still in a spool is sent at the next start.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from device.box import Box
from device.meters import MeterSource, SimulatedMeter
from device.publisher import MqttConfig, Publisher
from device.settings import DeviceSettings
from device.sources.spec import MeterSpec
from device.spool import Spool
from readings.errors import ConfigError
from readings.models import topic_for

log = structlog.get_logger("device.runtime")


class Clock(Protocol):
    def now_ms(self) -> int:
        """UTC epoch milliseconds as the box sees them."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ScaledClock:
    """Simulated time: starts at ``start_ms`` and runs ``speed`` times faster than real time.

    With ``wall`` set it never passes the wall clock: a sped-up run that started in the past
    catches up with the present, then goes on in real time (no reading lies in the future).
    """

    start_ms: int
    speed: float = 1.0
    wall: WallClock | None = None
    _origin_s: float = field(default_factory=time.monotonic)

    def now_ms(self) -> int:
        simulated = self.start_ms + int((time.monotonic() - self._origin_s) * 1000 * self.speed)
        return simulated if self.wall is None else min(simulated, self.wall.now_ms())


def build_meter(
    settings: DeviceSettings,
    *,
    start_energy_wh: float | None,
    first_ts_ms: int,
    start_energy_export_wh: float | None = None,
) -> MeterSource:
    if settings.meter == "modbus":
        from device.modbus import ModbusMeter  # pymodbus only where a real meter is wired

        return ModbusMeter.from_settings(settings.modbus)
    sim = settings.simulated
    resets: tuple[int, ...] = ()
    if sim.reset_every_s > 0:
        step_ms = int(sim.reset_every_s * 1000)
        resets = tuple(first_ts_ms + step_ms * i for i in range(1, 10_000))
    return SimulatedMeter(
        seed=sim.seed,
        profile=sim.profile,
        scale=sim.scale,
        noise_w=sim.noise_w,
        utc_offset_h=sim.utc_offset_h,
        start_energy_wh=sim.start_energy_wh if start_energy_wh is None else start_energy_wh,
        reset_at_ms=resets,
        solar_kw=sim.solar_kw,
        start_energy_export_wh=start_energy_export_wh or 0.0,
    )


def build_box(
    settings: DeviceSettings,
    *,
    now_ms: int,
    mqtt: MqttConfig | None = None,
    rng: random.Random | None = None,
    meter: MeterSource | None = None,
) -> Box:
    """One box from its settings. A simulated meter resumes from the registers in the spool.

    ``meter``, when given, is read instead of the one the settings describe (``build_boxes``).
    Refuses (``ConfigError``) a topic the broker cannot take before it opens the spool.
    """
    topic = settings.publish_topic()
    spool = Spool(
        settings.resolved_spool_path,
        settings.device_id,
        max_readings=settings.spool_max_readings,
        synchronous=settings.spool_synchronous,
    )
    last = spool.last
    interval_ms = int(settings.read_interval_s * 1000)
    # Never stamp a reading at or before the last one of a previous run (simulated time may
    # have run ahead of the wall clock then).
    first_read_ms = max(now_ms, (last.ts_ms or 0) + interval_ms)
    if meter is None:
        meter = build_meter(
            settings,
            start_energy_wh=last.energy_wh,
            start_energy_export_wh=last.energy_export_wh,
            first_ts_ms=first_read_ms,
        )
    publisher = Publisher(mqtt or settings.mqtt_config(), rng=rng)
    box = Box(
        settings.device_id,
        meter=meter,
        spool=spool,
        publisher=publisher,
        rule=settings.batch_policy,
        read_interval_ms=interval_ms,
        max_inflight=settings.max_inflight,
        first_read_ms=first_read_ms,
        topic=topic,
    )
    if topic != topic_for(settings.device_id):
        log.info("basic_ingest", device_id=settings.device_id, topic=topic)
    if len(spool):
        log.info("spool_resumed", device_id=settings.device_id, readings=len(spool), last_seq=last.seq)
    return box


def meter_settings(settings: DeviceSettings) -> list[tuple[DeviceSettings, MeterSpec]]:
    """The settings of each meter's box (``settings.meters``): its thing, spool and certificate.

    A meter without a thing takes ``device_id``; only one may. With several meters each spool
    is ``<thing>.db`` in the folder of ``spool_path`` (or ``.local/spool``), and each box uses
    ``devices/<thing>.crt`` of ``cert_dir``. ``ConfigError`` for a bad URL, a thing named twice,
    or one certificate file for several things.
    """
    from device.sources import parse_meter_url

    specs = [parse_meter_url(m.url, thing=m.thing, options=m.options) for m in settings.meters]
    things = [spec.thing or settings.device_id for spec in specs]
    repeated = sorted({t for t in things if things.count(t) > 1})
    if repeated:
        raise ConfigError(f"each meter needs its own thing; {', '.join(repeated)} named more than once (#thing=…)")
    if len(specs) > 1 and (settings.cert_file or settings.key_file):
        raise ConfigError("cert_file/key_file name one identity; several meters use cert_dir/devices/<thing>.crt")
    spool_dir = settings.spool_path.parent if settings.spool_path else Path(".local/spool")
    out = []
    for spec, thing in zip(specs, things, strict=True):
        update: dict[str, object] = {"device_id": thing}
        if len(specs) > 1 or not settings.spool_path:
            update["spool_path"] = spool_dir / f"{thing}.db"
        out.append((settings.model_copy(update=update), spec))
    return out


def build_boxes(settings: DeviceSettings, *, now_ms: int) -> list[Box]:
    """The boxes of ``device run``: one per entry of ``settings.meters``, else the one meter."""
    if not settings.meters:
        return [build_box(settings, now_ms=now_ms)]
    from device.sources import open_meter

    boxes: list[Box] = []
    try:
        for box_settings, spec in meter_settings(settings):
            box_settings.publish_topic()  # refuse a bad topic before a meter connects
            meter = open_meter(spec, default_tz=settings.timezone)
            try:
                boxes.append(build_box(box_settings, now_ms=now_ms, meter=meter))
            except BaseException:
                meter.close()
                raise
            log.info("meter_opened", device_id=box_settings.device_id, meter=spec.label)
    except BaseException:
        for box in boxes:
            box.close()
        raise
    return boxes


@dataclass(slots=True)
class RunLoop:
    """Ticks boxes until stopped or ``duration_s`` (real seconds) passed, then drains."""

    boxes: list[Box]
    clock: Clock
    poll_s: float = 0.02
    drain_s: float = 30.0
    stop_event: threading.Event = field(default_factory=threading.Event)

    def run(self, duration_s: float | None = None) -> None:
        for box in self.boxes:
            box.publisher.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not self.stop_event.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                now_ms = self.clock.now_ms()
                for box in self.boxes:
                    box.tick(now_ms)
                self.stop_event.wait(self.poll_s)
            self.drain()
        finally:
            for box in self.boxes:
                box.close()

    def drain(self) -> bool:
        """Publish what is spooled (ignoring max_wait) until everything is acknowledged."""
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline:
            now_ms = self.clock.now_ms()
            for box in self.boxes:
                box.apply_acks()
                box.publish_ready(now_ms, force=True)
            if all(box.drained for box in self.boxes):
                log.info("boxes_drained", boxes=len(self.boxes))
                return True
            time.sleep(self.poll_s)
        left = sum(len(box.spool) for box in self.boxes)
        log.warning("drain_timeout", spooled_readings=left, hint="kept in the spool for the next start")
        return False


def simulated_settings(
    base: DeviceSettings, index: int, device_id: str, spool_dir: Path, *, solar_every: int = 1
) -> DeviceSettings:
    """The settings of virtual box ``index``: own id, spool, seed and a mix of profiles.

    Boxes 0, ``solar_every``, 2 × ``solar_every``, … keep the base's ``solar_kw``; the others
    have no solar.
    """
    if solar_every < 1:
        raise ConfigError(f"solar_every must be >= 1, not {solar_every}")
    sim = base.simulated.model_copy(
        update={
            "seed": base.simulated.seed + index,
            "profile": "small_business" if index % 5 == 4 else "household",
            "scale": 0.6 + (index * 7919 % 100) / 100.0,
            "solar_kw": base.simulated.solar_kw if index % solar_every == 0 else 0.0,
        }
    )
    return base.model_copy(
        update={
            "device_id": device_id,
            "spool_path": spool_dir / f"{device_id}.db",
            "simulated": sim,
            "meter": "simulated",
        }
    )


def device_ids(prefix: str, count: int, first: int = 1) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(first, first + count)]
