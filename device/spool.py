"""The box's durable spool: every reading is written here before anything else happens to it.

Guarantees:

- ``append`` gives each reading the next ``seq`` of its device, in the same SQLite transaction
  that stores it, so ``seq`` is strictly increasing (and gap-free) across restarts: the counter
  lives in the file, never in memory only.
- A row leaves the spool only through ``delete_through``/``delete``, which the box calls when the
  broker acknowledged (PUBACK) the message that carried it. A crash (kill -9) between publish and
  acknowledgement leaves the row in place and it is sent again: at-least-once, never lost.
- The file is bounded: past ``max_readings`` rows, the oldest are dropped (logged as
  ``spool_cap_reached`` and counted); this is the only way a reading is lost, and only after
  the box could not reach its broker for ``max_readings`` reading intervals.

Files written before a column existed are migrated in place when a box opens them (``ALTER
TABLE ... ADD COLUMN``, the new column NULL in every older row); ``inspect`` reads both layouts
without writing.

Durability: WAL mode. ``synchronous="FULL"`` survives power loss; ``"NORMAL"`` survives a killed
process but not a power cut (the simulator uses it for speed).

One spool is owned by one thread: SQLite connections are not shared between threads here.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from device import metrics
from readings.errors import DeviceError

log = structlog.get_logger("device.spool")

Synchronous = Literal["FULL", "NORMAL", "OFF"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    device_id TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts_ms INTEGER,
    last_energy_wh REAL,
    last_energy_export_wh REAL
);
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    energy_wh REAL NOT NULL,
    power_w REAL,
    voltage_v REAL,
    current_a REAL,
    pf REAL,
    energy_export_wh REAL
);
"""

_ADDED_COLUMNS = (
    ("state", "last_energy_export_wh", "REAL"),
    ("readings", "energy_export_wh", "REAL"),
)
"""Columns newer than the first layout, each nullable: what ``_migrate`` adds to an older file."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One read of a meter, before the spool numbers it."""

    ts_ms: int
    energy_wh: float
    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    pf: float | None = None
    energy_export_wh: float | None = None
    """The export register (OBIS 2.8.0), for a meter that measures both directions."""


@dataclass(frozen=True, slots=True)
class SpooledReading:
    """A sample with the ``seq`` the spool gave it."""

    seq: int
    ts_ms: int
    energy_wh: float
    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    pf: float | None = None
    energy_export_wh: float | None = None


@dataclass(frozen=True, slots=True)
class LastReading:
    """What the spool remembers of the newest reading even after it was deleted."""

    seq: int
    ts_ms: int | None
    energy_wh: float | None
    energy_export_wh: float | None = None


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """What a spool file says, read without opening it as a box: its device, the newest
    reading it numbered (readings 1..``last.seq`` are every reading the box took) and how many
    are still waiting for an acknowledgement."""

    device_id: str
    last: LastReading
    unacked: int


def inspect(path: Path) -> SpoolFile | None:
    """The state of the spool file at ``path``; None when there is none (or it holds no spool).

    Reads only, so it is safe beside a running box (WAL readers do not block the writer).
    """
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(path)) as db:
            # every column by name: a file no box of this version opened yet has no export column
            cursor = db.execute("SELECT * FROM state WHERE id = 1")
            row = cursor.fetchone()
            if row is None:
                return None
            state = dict(zip((column[0] for column in cursor.description), row, strict=True))
            unacked = int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
            last = LastReading(
                int(state["last_seq"]), state["last_ts_ms"], state["last_energy_wh"], state.get("last_energy_export_wh")
            )
            return SpoolFile(state["device_id"], last, unacked)
    except (sqlite3.Error, KeyError):
        return None


def inspect_dir(spool_dir: Path) -> dict[str, SpoolFile]:
    """Every spool (``*.db``) of a directory, by device."""
    files = (inspect(path) for path in sorted(spool_dir.glob("*.db")))
    return {f.device_id: f for f in files if f is not None}


class Spool:
    """SQLite-backed queue of one device's unacknowledged readings (see module docstring)."""

    def __init__(
        self,
        path: Path,
        device_id: str,
        *,
        max_readings: int = 500_000,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if max_readings < 1:
            raise DeviceError("spool max_readings must be >= 1")
        self.path = path
        self.device_id = device_id
        self.max_readings = max_readings
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT device_id, last_seq FROM state WHERE id = 1").fetchone()
            if row is None:
                self._db.execute("INSERT INTO state (id, device_id, last_seq) VALUES (1, ?, 0)", (device_id,))
            elif row[0] != device_id:
                raise DeviceError(f"spool {path} belongs to {row[0]!r}, not {device_id!r}")
            self._migrate()  # only a file this box owns is changed
            self._count = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])
        except sqlite3.Error as exc:
            raise DeviceError(f"cannot open spool {path}: {exc}") from exc
        self._labels = {"device_id": device_id}
        metrics.SPOOL_READINGS.labels(**self._labels).set(self._count)

    def _migrate(self) -> None:
        """Add the columns an older file lacks, in one transaction (all or none)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, kind in _ADDED_COLUMNS:
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    log.info("spool_migrated", path=str(self.path), table=table, column=column)
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return self._count

    @property
    def last(self) -> LastReading:
        seq, ts_ms, energy_wh, export_wh = self._db.execute(
            "SELECT last_seq, last_ts_ms, last_energy_wh, last_energy_export_wh FROM state WHERE id = 1"
        ).fetchone()
        return LastReading(int(seq), ts_ms, energy_wh, export_wh)

    def append(self, sample: Sample) -> int:
        """Store ``sample`` durably under the next seq and return that seq."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            seq = int(db.execute("SELECT last_seq FROM state WHERE id = 1").fetchone()[0]) + 1
            db.execute(
                "INSERT INTO readings (seq, ts_ms, energy_wh, power_w, voltage_v, current_a, pf, energy_export_wh)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    sample.ts_ms,
                    sample.energy_wh,
                    sample.power_w,
                    sample.voltage_v,
                    sample.current_a,
                    sample.pf,
                    sample.energy_export_wh,
                ),
            )
            db.execute(
                "UPDATE state SET last_seq = ?, last_ts_ms = ?, last_energy_wh = ?, last_energy_export_wh = ?"
                " WHERE id = 1",
                (seq, sample.ts_ms, sample.energy_wh, sample.energy_export_wh),
            )
            dropped = 0
            if self._count + 1 > self.max_readings:
                dropped = self._count + 1 - self.max_readings
                db.execute(
                    "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)", (dropped,)
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise DeviceError(f"spool write failed: {exc}") from exc
        self._count += 1 - dropped
        metrics.SPOOL_WRITES.labels(**self._labels).inc()
        metrics.SPOOL_READINGS.labels(**self._labels).set(self._count)
        if dropped:
            metrics.SPOOL_DROPPED.labels(**self._labels).inc(dropped)
            log.warning(
                "spool_cap_reached",
                device_id=self.device_id,
                max_readings=self.max_readings,
                dropped_readings=dropped,
                hint="broker unreachable for long: oldest readings are being discarded",
            )
        return seq

    def pending(self, *, after_seq: int = 0, limit: int = 100) -> list[SpooledReading]:
        """Up to ``limit`` stored readings with seq > ``after_seq``, oldest first."""
        rows = self._db.execute(
            "SELECT seq, ts_ms, energy_wh, power_w, voltage_v, current_a, pf, energy_export_wh FROM readings"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [SpooledReading(*row) for row in rows]

    def delete(self, first_seq: int, last_seq: int) -> int:
        """Remove the acknowledged readings ``first_seq..last_seq``; returns how many were there."""
        try:
            cur = self._db.execute("DELETE FROM readings WHERE seq BETWEEN ? AND ?", (first_seq, last_seq))
        except sqlite3.Error as exc:
            raise DeviceError(f"spool delete failed: {exc}") from exc
        self._count -= cur.rowcount
        metrics.SPOOL_READINGS.labels(**self._labels).set(self._count)
        return cur.rowcount

    def close(self) -> None:
        self._db.close()
