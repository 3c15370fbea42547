"""The spool: seq survives reopen, rows leave only on ack, the cap drops oldest first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from device.spool import LastReading, Sample, Spool, SpoolFile, inspect, inspect_dir
from readings.errors import DeviceError


def sample(ts_ms: int, energy_wh: float = 1.0) -> Sample:
    return Sample(ts_ms=ts_ms, energy_wh=energy_wh, power_w=100.0)


def test_seq_is_strictly_increasing_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    spool = Spool(path, "box-1")
    first = [spool.append(sample(i)) for i in range(5)]
    spool.delete(1, 5)  # even an empty spool must remember where it was
    spool.close()

    reopened = Spool(path, "box-1")
    after = [reopened.append(sample(10 + i)) for i in range(3)]
    assert first + after == [1, 2, 3, 4, 5, 6, 7, 8]
    assert reopened.last.seq == 8 and reopened.last.ts_ms == 12


def test_rows_are_deleted_only_by_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "box.db", "box-1")
    for i in range(6):
        spool.append(sample(1000 + i, energy_wh=float(i)))
    assert [r.seq for r in spool.pending(limit=10)] == [1, 2, 3, 4, 5, 6]
    assert [r.seq for r in spool.pending(after_seq=4, limit=10)] == [5, 6]

    assert spool.delete(2, 4) == 3
    assert [r.seq for r in spool.pending(limit=10)] == [1, 5, 6]
    assert len(spool) == 3
    kept = spool.pending(limit=1)[0]
    assert (kept.ts_ms, kept.energy_wh, kept.power_w) == (1000, 0.0, 100.0)


def test_unacked_rows_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    spool = Spool(path, "box-1")
    for i in range(4):
        spool.append(sample(i))
    spool.delete(1, 1)
    # no close(): the process "dies"; a second connection sees the committed state
    with sqlite3.connect(path) as db:
        seqs = [row[0] for row in db.execute("SELECT seq FROM readings ORDER BY seq")]
    assert seqs == [2, 3, 4]


def test_cap_drops_oldest_first_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "box.db", "box-1", max_readings=3)
    for i in range(5):
        spool.append(sample(i))
    assert [r.seq for r in spool.pending(limit=10)] == [3, 4, 5]
    assert len(spool) == 3
    assert spool.last.seq == 5


def test_cap_metric_counts_dropped_readings(tmp_path: Path) -> None:
    from device import metrics

    counter = metrics.SPOOL_DROPPED.labels(device_id="box-cap")
    before = counter._value.get()
    spool = Spool(tmp_path / "cap.db", "box-cap", max_readings=2)
    for i in range(7):
        spool.append(sample(i))
    assert counter._value.get() - before == 5


def test_spool_of_another_device_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    Spool(path, "box-1").close()
    with pytest.raises(DeviceError):
        Spool(path, "box-2")


def test_inspect_reads_a_spool_beside_its_running_box(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "box-1.db", "box-1")
    for i in range(4):
        spool.append(sample(1000 + i, energy_wh=10.0 + i))
    spool.delete(1, 3)
    assert inspect(tmp_path / "box-1.db") == SpoolFile("box-1", LastReading(4, 1003, 13.0), unacked=1)
    spool.append(sample(2000, energy_wh=20.0))  # the box goes on writing while it is read
    assert inspect(tmp_path / "box-1.db") == SpoolFile("box-1", LastReading(5, 2000, 20.0), unacked=2)
    spool.close()


def test_inspect_dir_finds_every_spool_and_ignores_what_is_not_one(tmp_path: Path) -> None:
    for device_id in ("box-1", "box-2"):
        Spool(tmp_path / f"{device_id}.db", device_id).close()
    (tmp_path / "junk.db").write_bytes(b"not a database at all")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE t (x)")
    assert inspect(tmp_path / "missing.db") is None and inspect(tmp_path / "junk.db") is None
    assert sorted(inspect_dir(tmp_path)) == ["box-1", "box-2"]
    assert inspect_dir(tmp_path)["box-2"] == SpoolFile("box-2", LastReading(0, None, None), unacked=0)
