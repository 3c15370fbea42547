"""Boxes -> Mosquitto (mutual TLS) -> bridge -> kinesis-mock: no reading lost through failures.

Ground truth is the boxes' own spool files, read with plain SQL after the boxes exit: a box
numbers a reading in the transaction that stores it, so readings 1..last_seq of every box
are exactly what must be on the stream. Duplicates on the stream are allowed (QoS 1 and
redelivery; the consumer dedups on (device_id, seq)); a missing reading is not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DEVICES = 3


def finish(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    assert proc.wait(timeout=timeout_s) == 0, "device simulate failed (see simulate.log)"


def assert_all_on_stream(kit, kinesis, stream: str, spool_dir: Path, *, min_readings: int) -> None:
    expected, left = kit.spooled_truth(spool_dir)
    assert left == 0, "boxes exited with unacknowledged readings"
    assert len(expected) >= min_readings
    assert {device for device, _ in expected} == {f"box-{i:04d}" for i in range(1, DEVICES + 1)}
    client = kinesis.client()
    kit.wait_for(lambda: expected <= kit.readings_on_stream(client, stream), 45, 1.0)
    records = kit.read_stream(client, stream)
    got = {(rec["device_id"], r["seq"]) for rec in records for r in rec["readings"]}
    assert expected - got == set(), f"{len(expected - got)} readings missing"
    assert got == expected
    assert all(rec["thing"] == rec["device_id"] == rec["_partition_key"] for rec in records)
    # the register each box publishes never decreases (no resets configured)
    by_device: dict[str, list[tuple[int, float]]] = {}
    for rec in records:
        by_device.setdefault(rec["device_id"], []).extend((r["seq"], r["energy_wh"]) for r in rec["readings"])
    for pairs in by_device.values():
        registers = [e for _, e in sorted(set(pairs))]
        assert registers == sorted(registers)


def test_every_reading_arrives_through_a_broker_outage(broker, procs, stream, kinesis, kit, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    procs.bridge(broker.port, stream)
    sim = procs.simulate(broker.port, spool_dir, devices=DEVICES, duration_s=22)
    time.sleep(5)
    broker.stop()  # SIGTERM: Mosquitto saves the bridge's session and its queue
    time.sleep(11)  # >= 10 s without a broker: the boxes spool
    broker.start()
    finish(sim)
    assert_all_on_stream(kit, kinesis, stream, spool_dir, min_readings=DEVICES * 150)
    assert "mqtt_disconnected" in (tmp_path / "simulate.log").read_text()


def test_every_reading_arrives_when_the_bridge_is_killed(broker, procs, stream, kinesis, kit, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    bridge = procs.bridge(broker.port, stream)
    sim = procs.simulate(broker.port, spool_dir, devices=DEVICES, duration_s=15)
    time.sleep(5)
    os.kill(bridge.pid, signal.SIGKILL)  # messages received but not yet acked are redelivered
    bridge.wait()
    time.sleep(4)  # the broker queues for the bridge's persistent session meanwhile
    procs.bridge(broker.port, stream)
    finish(sim)
    assert_all_on_stream(kit, kinesis, stream, spool_dir, min_readings=DEVICES * 100)


def test_every_reading_arrives_when_a_box_is_killed(broker, procs, stream, kinesis, kit, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    procs.bridge(broker.port, stream)
    sim = procs.simulate(broker.port, spool_dir, devices=DEVICES, duration_s=60)
    time.sleep(6)
    os.kill(sim.pid, signal.SIGKILL)  # mid-publish: rows without PUBACK stay in the spools
    sim.wait()
    before, left = kit.spooled_truth(spool_dir)
    assert len(before) > 0
    sim = procs.simulate(broker.port, spool_dir, devices=DEVICES, duration_s=6)
    finish(sim)
    after, _ = kit.spooled_truth(spool_dir)
    assert before < after  # numbering went on from the spool, not from 1
    assert_all_on_stream(kit, kinesis, stream, spool_dir, min_readings=DEVICES * 100)
