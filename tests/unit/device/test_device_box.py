"""The box loop with an in-memory MQTT stand-in: delete on PUBACK only, meter failures survive."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from device.batching import BatchPolicy
from device.box import Box
from device.meters import MeterError, SimulatedMeter
from device.publisher import Ack
from device.spool import Sample, Spool


@dataclass
class FakePublisher:
    """Records publishes; the test decides when the broker acknowledges."""

    connected: bool = True
    sent: dict[int, bytes] = field(default_factory=dict)
    acks: list[Ack] = field(default_factory=list)
    next_mid: int = 1

    def publish(self, topic: str, payload: bytes) -> int:
        mid, self.next_mid = self.next_mid, self.next_mid + 1
        self.sent[mid] = payload
        return mid

    def take_acks(self) -> list[Ack]:
        acks, self.acks = self.acks, []
        return acks

    def ack_all(self) -> None:
        self.acks.extend(Ack(mid, True) for mid in self.sent)

    def stop(self) -> None: ...


class FlakyMeter:
    def __init__(self) -> None:
        self.inner = SimulatedMeter(seed=1)
        self.fail_at: set[int] = set()

    def read(self, now_ms: int) -> Sample:
        if now_ms in self.fail_at:
            raise MeterError("timeout", "no answer")
        return self.inner.read(now_ms)

    def close(self) -> None: ...


def make_box(tmp_path: Path, publisher: FakePublisher, meter=None, **rule) -> Box:
    return Box(
        "box-1",
        meter=meter or SimulatedMeter(seed=1),
        spool=Spool(tmp_path / "box.db", "box-1"),
        publisher=publisher,  # type: ignore[arg-type]
        rule=BatchPolicy(**{"max_readings": 5, "max_wait_s": 30.0, **rule}),
        read_interval_ms=1_000,
        max_inflight=2,
        first_read_ms=0,
    )


def seqs(payload: bytes) -> list[int]:
    return [r["seq"] for r in orjson.loads(payload)["readings"]]


def test_readings_leave_the_spool_only_after_puback(tmp_path: Path) -> None:
    pub = FakePublisher()
    box = make_box(tmp_path, pub)
    box.tick(4_000)  # reads at 0..4 s: five readings, a full batch
    assert [seqs(p) for p in pub.sent.values()] == [[1, 2, 3, 4, 5]]
    assert len(box.spool) == 5

    pub.ack_all()
    box.tick(4_500)
    assert len(box.spool) == 0 and box.drained


def test_disconnected_box_spools_and_later_sends_backlog_in_order(tmp_path: Path) -> None:
    pub = FakePublisher(connected=False)
    box = make_box(tmp_path, pub)
    for t in range(0, 12_000, 1_000):
        box.tick(t)
    assert pub.sent == {} and len(box.spool) == 12

    pub.connected = True
    box.tick(12_000)  # 13 readings; the in-flight window (2) limits what goes out now
    assert [seqs(p) for p in pub.sent.values()] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    pub.ack_all()
    pub.sent.clear()
    box.tick(12_000, read=False)
    assert pub.sent == {}  # 3 readings, the oldest 2 s old: the batch waits for more
    box.tick(10_000 + 30_000, read=False)  # the oldest has waited max_wait_s
    assert [seqs(p) for p in pub.sent.values()] == [[11, 12, 13]]


def test_a_failing_meter_is_counted_and_the_box_goes_on(tmp_path: Path) -> None:
    meter = FlakyMeter()
    meter.fail_at = {1_000, 2_000}
    pub = FakePublisher()
    box = make_box(tmp_path, pub, meter=meter, max_wait_s=0.0)
    box.tick(3_000)
    assert box.stats.meter_errors == 2
    sent = [s for p in pub.sent.values() for s in seqs(p)]
    assert sent == [1, 2]  # readings at 0 s and 3 s, numbered without gaps


def test_unacked_messages_are_sent_again_after_a_restart(tmp_path: Path) -> None:
    pub = FakePublisher()
    box = make_box(tmp_path, pub)
    box.tick(4_000)
    box.spool.close()  # crash before the PUBACK: no ack applied

    pub2 = FakePublisher()
    box2 = make_box(tmp_path, pub2)
    box2.next_read_ms = 10_000
    box2.tick(5_000)
    assert [seqs(p) for p in pub2.sent.values()] == [[1, 2, 3, 4, 5]]


def test_a_sped_up_clock_catches_up_with_the_wall_clock_and_never_passes_it() -> None:
    import time as _time

    from device.runtime import ScaledClock

    class Wall:
        def now_ms(self) -> int:
            return 1_795_000_000_000

    clock = ScaledClock(1_795_000_000_000 - 5_000, speed=1_000_000.0, wall=Wall())
    first = clock.now_ms()
    _time.sleep(0.01)  # 10 ms at a million times speed: far past the wall clock if uncapped
    assert first <= clock.now_ms() == 1_795_000_000_000


def test_a_box_with_solar_publishes_the_export_register_it_read(tmp_path: Path) -> None:
    from readings.models import Message

    noon_ms = 12 * 3_600_000  # 1970-01-01T12:00Z: the simulated sun is at its highest
    pub = FakePublisher()
    box = Box(
        "box-1",
        meter=SimulatedMeter(seed=1, solar_kw=5.0),
        spool=Spool(tmp_path / "box.db", "box-1"),
        publisher=pub,  # type: ignore[arg-type]
        rule=BatchPolicy(max_readings=5, max_wait_s=30.0),
        read_interval_ms=1_000,
        first_read_ms=noon_ms,
    )
    box.tick(noon_ms + 4_000)
    [payload] = pub.sent.values()
    wire = Message.model_validate_json(payload).readings
    reference = SimulatedMeter(seed=1, solar_kw=5.0)  # the same meter, read directly
    read = [reference.read(noon_ms + i * 1_000) for i in range(5)]
    assert [(r.energy_wh, r.power_w, r.energy_export_wh) for r in wire] == [
        (s.energy_wh, s.power_w, s.energy_export_wh) for s in read
    ]
    assert all(r.power_w == 0.0 for r in wire) and len({r.energy_wh for r in wire}) == 1
    exports = [r.energy_export_wh or 0.0 for r in wire]
    assert exports == sorted(exports) and exports[-1] > exports[0]
