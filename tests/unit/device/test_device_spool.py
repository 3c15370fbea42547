"""The spool: seq survives reopen, rows leave only on ack, the cap drops oldest first."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from device.spool import LastReading, Sample, Spool, SpooledReading, SpoolFile, inspect, inspect_dir
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


# The layout of spool files written before the export register existed, as plain SQL.
OLD_LAYOUT = """
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    device_id TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts_ms INTEGER,
    last_energy_wh REAL
);
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    energy_wh REAL NOT NULL,
    power_w REAL,
    voltage_v REAL,
    current_a REAL,
    pf REAL
);
INSERT INTO state VALUES (1, 'box-old', 3, 3000, 30.5);
INSERT INTO readings VALUES (2, 2000, 20.25, 110.0, 230.0, 0.5, 0.95);
INSERT INTO readings VALUES (3, 3000, 30.5, 120.0, 231.0, 0.6, NULL);
"""


def old_spool(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_LAYOUT)
        db.commit()
    return path


def columns(path: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_export_register_is_stored_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    spool = Spool(path, "box-1")
    spool.append(Sample(ts_ms=1000, energy_wh=10.0, power_w=0.0, energy_export_wh=4.125))
    spool.append(Sample(ts_ms=2000, energy_wh=10.0))
    assert [(r.seq, r.energy_export_wh) for r in spool.pending(limit=10)] == [(1, 4.125), (2, None)]
    assert spool.last == LastReading(2, 2000, 10.0, None)
    spool.append(Sample(ts_ms=3000, energy_wh=10.5, energy_export_wh=6.5))
    spool.close()
    reopened = Spool(path, "box-1")
    assert reopened.last == LastReading(3, 3000, 10.5, 6.5)
    assert inspect(path) == SpoolFile("box-1", LastReading(3, 3000, 10.5, 6.5), unacked=3)
    reopened.close()


def test_a_spool_of_the_old_layout_is_read_then_migrated_in_place(tmp_path: Path) -> None:
    path = old_spool(tmp_path / "old.db")
    # inspect reads it as it is and writes nothing
    assert inspect(path) == SpoolFile("box-old", LastReading(3, 3000, 30.5, None), unacked=2)
    assert "energy_export_wh" not in columns(path, "readings")

    spool = Spool(path, "box-old")
    assert columns(path, "readings")[-1] == "energy_export_wh"
    assert columns(path, "state")[-1] == "last_energy_export_wh"
    # the old rows are kept as they were, with no export register
    assert spool.pending(limit=10) == [
        SpooledReading(2, 2000, 20.25, 110.0, 230.0, 0.5, 0.95, None),
        SpooledReading(3, 3000, 30.5, 120.0, 231.0, 0.6, None, None),
    ]
    assert len(spool) == 2 and spool.last == LastReading(3, 3000, 30.5, None)
    # numbering goes on from the old state row, now with the export register
    assert spool.append(Sample(ts_ms=4000, energy_wh=31.0, energy_export_wh=2.0)) == 4
    assert spool.pending(after_seq=3)[0].energy_export_wh == 2.0
    spool.close()

    again = Spool(path, "box-old")  # a second open finds nothing to add
    assert columns(path, "readings").count("energy_export_wh") == 1
    assert again.last == LastReading(4, 4000, 31.0, 2.0)
    assert inspect(path) == SpoolFile("box-old", LastReading(4, 4000, 31.0, 2.0), unacked=3)
    again.close()


def test_an_old_spool_of_another_device_is_refused_untouched(tmp_path: Path) -> None:
    path = old_spool(tmp_path / "old.db")
    with pytest.raises(DeviceError):
        Spool(path, "box-new")
    assert "energy_export_wh" not in columns(path, "readings")
    assert inspect(path) == SpoolFile("box-old", LastReading(3, 3000, 30.5, None), unacked=2)
