"""The largest hostile messages IoT Core passes leave a real consumer's shards flowing.

A box with a valid certificate publishes, on its own topic, 128 KB of bare numbers where
readings belong, and 128 KB of readings whose time has no offset; another producer puts a
record larger than any MQTT message. Valid records of the same device (so of the same shard)
follow. The real KCL daemon and processors must store every valid reading within one flush,
never restart, dead-letter each hostile record once, and stay within a bounded memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.loadgen import Fleet, put_records, rule_record
from devstack.stack import wait_until
from readings.decode import MAX_READINGS, MAX_RECORD_BYTES
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

pytestmark = pytest.mark.integration

RECEIVED_MS = 1_795_000_000_000
T0_MS = RECEIVED_MS - 3_600_000
MAX_PROCESSOR_RSS_MB = 300
"""Far above a processor's usual size (about 80 MB) and far below what the quadratic dead
letters of old needed (gigabytes for a 64 KB message)."""


def hostile_records(device: str) -> list[tuple[bytes, str]]:
    numbers = rule_record(device, [], RECEIVED_MS).replace(
        b'"readings":[]', b'"readings":[' + b",".join([b"1"] * 64_000) + b"]"
    )
    no_offset = {"seq": 1, "ts": "2026-11-17T00:00:00", "energy_wh": 1.0}
    naive = rule_record(device, [dict(no_offset, seq=n) for n in range(MAX_READINGS)], RECEIVED_MS)
    while len(naive) < 120_000:  # pad each reading with an ignored field, up to IoT Core's size
        naive = naive.replace(b'"energy_wh":1.0}', b'"energy_wh":1.0,"pad":"' + b"x" * 60 + b'"}')
    oversized = numbers.replace(b"[1,", b"[" + b"1," * 40_000, 1)
    assert len(numbers) <= MAX_RECORD_BYTES and len(naive) <= MAX_RECORD_BYTES < len(oversized)
    return [(numbers, "too_many_readings"), (naive, "schema_violation"), (oversized, "too_large")]


def processor_peak_rss_mb(consumer_pid: int) -> list[float]:
    """Peak resident memory (VmHWM) of each record processor of one consumer."""
    peaks = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            stat = (proc / "stat").read_text()
            status = (proc / "status").read_text()
        except OSError:
            continue
        pgid = int(stat.rsplit(")", 1)[1].split()[2])
        if pgid == consumer_pid and b"consumer.processor" in cmdline:
            (hwm,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
            peaks.append(int(hwm.split()[1]) / 1024)
    return peaks


def test_hostile_messages_leave_the_shard_flowing(pipeline) -> None:
    fleet = Fleet(8, interval_ms=10_000, seed=3)
    stream = pipeline.settings.stream_name
    victim = fleet.meters[0].device_id
    hostile = hostile_records(victim)
    poison_seqs: list[str] = []
    put_records(pipeline.kinesis, stream, [(victim, data) for data, _ in hostile], accepted=poison_seqs)

    valid: list[bytes] = []
    valid_seqs: list[str] = []
    for wave in range(3):
        batch = fleet.messages(T0_MS + wave * 6 * fleet.interval_ms, 6, RECEIVED_MS)
        valid.extend(data for _, data in batch)
        put_records(pipeline.kinesis, stream, batch, accepted=valid_seqs)

    consumer = pipeline.start_consumer(WATTSTREAM_MAX_AGE_S="2", WATTSTREAM_MAX_RECORDS="1000")
    pipeline.wait_archived(set(valid_seqs) | set(poison_seqs), timeout_s=180)
    wait_until(lambda: _stored(pipeline, valid), 60, 1.0, "every valid reading stored")
    peaks = processor_peak_rss_mb(consumer.proc.pid)
    assert consumer.stop() == 0

    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(valid))
    dead = {line["sequence_number"]: line for line in pipeline.dead_letters()}
    assert {seq: dead[seq]["reason"] for seq in poison_seqs} == {
        seq: reason for seq, (_, reason) in zip(poison_seqs, hostile, strict=False)
    }
    assert len(dead) == len(poison_seqs)

    log = consumer.log_path.read_text(errors="replace")
    assert '"event": "processor_failed"' not in log
    assert log.count('"event": "shard_initialized"') == pipeline.settings.shard_count
    # One log line per reason and batch, not one per rejected reading.
    assert log.count('"event": "record_rejected"') <= 3 * 2
    assert peaks and max(peaks) < MAX_PROCESSOR_RSS_MB, peaks


def _stored(pipeline, payloads: list[bytes]) -> bool:
    expected = expected_aggregates(payloads)
    stored = stored_aggregates(pipeline.aggregates())
    return all(stored.get(k, {}).get("samples") == v["samples"] for k, v in expected.items())
