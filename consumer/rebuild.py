"""``wattstream rebuild``: the aggregates of a range recomputed from the raw archive.

The archive holds every record the consumer took, one object per committed batch. A rebuild
runs the consumer's own code over them (``decode_record``, ``compute_batch``, ``settle``, the
same ``RegisterRules``), batch by batch as the consumer committed them, so with unchanged rules
it reproduces the consumer's closed hours and days. In this order:

Step 1. List the archive; each shard's objects in sequence-number order, shards in lineage
        order (``consumer.rebuild_plan``), up to the last arrival day that can still hold a
        reading of the range.
Step 2. Per shard (in parallel where the lineage allows), fold every object from the
        archive's beginning: the devices' state at ``--from`` is what the whole history gave
        them. A device that moved after a split or merge continues with the state its parent
        shard left. Only buckets inside [from, to) are written, into a staging table, one
        arrival hour of a shard at a time, through the consumer's store code
        (``AggregateStore`` with a ``Writer`` whose batch marker is the hour's last sequence
        number, so an hour written again after a crash is found and skipped). After each hour
        the shard's device states go to S3 and the rebuild's manifest records the hour done.
Step 3. Replace: per device, the target's items in the range are compared with the staging
        table's; each one that differs is put or deleted, conditional on the item being the
        one read (``sinks.ranges``). An item a batch wrote that the rebuild never read (the
        consumer kept going) is left alone.
Step 4. The manifest says done; the staging table is dropped.

A rebuild killed anywhere is run again with the same parameters: the manifest (keyed by them)
says which hours of which shards are done, their states are loaded, and the rest is redone.
``--dry-run`` runs steps 1 and 2 into memory and reports the differences of step 3.
"""

from __future__ import annotations

import base64
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog

from batcher import DeviceState, RegisterRules, compute_batch
from batcher.ledger import Ledger, settle
from consumer.protocol import ShardMemory
from consumer.rebuild_plan import (
    Difference,
    Params,
    RawObject,
    UnitWrites,
    differences,
    hours_of,
    in_range,
    objects_by_shard,
    predecessors,
    topological,
)
from readings import Reading, decode_record
from sinks.aggregates import Writer
from sinks.ports import AggregatePort, ArchivePort, RangePort, SnapshotPort
from sinks.position import position_marker
from sinks.ranges import Change

T = TypeVar("T")
U = TypeVar("U")

BUILDING, REPLACING, DONE = "building", "replacing", "done"


def manifest_key(rebuild_id: str) -> str:
    return f"rebuild/{rebuild_id}/manifest.json.gz"


def checkpoint_key(rebuild_id: str, shard_id: str, last: int) -> str:
    return f"rebuild/{rebuild_id}/state/shard={shard_id}/{last}.json.gz"


@dataclass(slots=True)
class Manifest:
    """What a rebuild has done: its phase and, per shard, the last object folded and written."""

    rebuild_id: str
    phase: str = BUILDING
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    """shard -> ``through`` (last sequence number done), ``state_key``, ``complete``."""

    def to_doc(self) -> dict[str, Any]:
        return {"rebuild_id": self.rebuild_id, "phase": self.phase, "shards": self.shards}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Manifest:
        return cls(str(doc["rebuild_id"]), str(doc["phase"]), {k: dict(v) for k, v in doc["shards"].items()})

    def completed(self) -> set[str]:
        return {shard for shard, entry in self.shards.items() if entry.get("complete")}


@dataclass(frozen=True, slots=True)
class Staging:
    """Where step 2 writes: a table of its own, as a store of closed buckets and as ranges."""

    aggregates: AggregatePort
    ranges: RangePort
    drop: Callable[[], None] = lambda: None


class Progress(Protocol):
    def total(self, objects: int) -> None: ...

    def advance(self, objects: int) -> None: ...


class _Silent:
    def total(self, objects: int) -> None:
        pass

    def advance(self, objects: int) -> None:
        pass


@dataclass(slots=True)
class Outcome:
    objects: int = 0
    devices: int = 0
    differences: list[Difference] = field(default_factory=list)
    kept: int = 0
    """Stored items left alone: written by batches the rebuild never read."""
    written: int = 0
    deleted: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


class _StoppedError(Exception):
    """Another shard failed: this one stops too, as the whole process would."""


class Rebuild:
    """One rebuild's run (see the module docstring). ``checkpoints`` None: a dry run, nothing stored."""

    def __init__(
        self,
        params: Params,
        *,
        archive: ArchivePort,
        checkpoints: SnapshotPort | None,
        parents: Mapping[str, tuple[str, ...]] | None,
        open_staging: Callable[[bool], Staging],
        target: RangePort,
        workers: int = 4,
        progress: Progress | None = None,
    ) -> None:
        self.params = params
        self.rules = RegisterRules(params.tolerance_wh, params.max_power_w, params.anchor_window_ms)
        self._archive = archive
        self._checkpoints = checkpoints
        self._parents = parents
        self._open_staging = open_staging
        self._target = target
        self._workers = max(1, workers)
        self._progress = progress or _Silent()
        self._states: dict[str, DeviceState] = {}
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.manifest = Manifest(params.rebuild_id)

    @property
    def dry_run(self) -> bool:
        return self._checkpoints is None

    def run(self) -> Outcome:
        # Step 1. The archive's objects per shard, and the order the shards must be taken in.
        objects = objects_by_shard(self._archive.keys("raw/"), self.params.last_day)
        preds = predecessors(objects, self._parents)
        stored = self._load_manifest()
        fresh = stored is None or stored.phase == DONE
        self.manifest = Manifest(self.params.rebuild_id) if fresh or stored is None else stored
        staging = self._open_staging(fresh)
        self._save()
        # A logger per run: the command configures logging anew for each invocation.
        structlog.get_logger("wattstream.rebuild").info(
            "rebuild_started", rebuild_id=self.params.rebuild_id, fresh=fresh, shards=len(objects)
        )
        self._progress.total(sum(len(objs) for objs in objects.values()))
        try:
            self._load_completed(topological(preds))
            if self.manifest.phase == BUILDING:
                self._build(objects, preds, staging)
                self.manifest.phase = REPLACING
                self._save()
            outcome = self._replace(staging)
        finally:
            staging.aggregates.close()
        outcome.objects = sum(len(objs) for objs in objects.values())
        if not self.dry_run and not outcome.refused:
            # Step 4. Done: a run with the same parameters now starts afresh.
            self.manifest.phase = DONE
            self._save()
            staging.drop()
            self._retire_checkpoints()
        return outcome

    # -- step 2: fold the archive -----------------------------------------------------------

    def _build(
        self, objects: Mapping[str, list[RawObject]], preds: Mapping[str, frozenset[str]], staging: Staging
    ) -> None:
        done = self.manifest.completed() & set(objects)
        for shard in done:
            self._progress.advance(len(objects[shard]))
        running: dict[str, Future[None]] = {}
        with (
            ThreadPoolExecutor(self._workers, thread_name_prefix="rebuild-shard") as shards,
            ThreadPoolExecutor(self._workers * 2, thread_name_prefix="rebuild-get") as gets,
        ):
            try:
                while len(done) < len(objects):
                    for shard in topological(preds):
                        if shard not in done and shard not in running and preds[shard] <= done:
                            running[shard] = shards.submit(self._shard, shard, objects[shard], staging, gets)
                    finished, _ = wait(running.values(), return_when=FIRST_COMPLETED)
                    for shard, future in list(running.items()):
                        if future in finished:
                            future.result()
                            done.add(shard)
                            del running[shard]
            except BaseException:
                self._stop.set()
                raise

    def _shard(self, shard: str, objects: list[RawObject], staging: Staging, gets: ThreadPoolExecutor) -> None:
        entry = self.manifest.shards.get(shard, {})
        local = self._checkpoint_memory(entry.get("state_key"))
        through = int(entry.get("through", -1))
        todo = [obj for obj in objects if obj.last > through]
        self._progress.advance(len(objects) - len(todo))
        batches = _prefetched(gets, self._readings, todo, ahead=self._workers * 2)
        for unit in hours_of(todo):
            writes = UnitWrites.empty()
            for _ in unit:
                if self._stop.is_set():
                    raise _StoppedError(shard)
                _, readings = next(batches)
                self._fold(local, readings, writes)
                self._progress.advance(1)
            # Written under the unit's last sequence number: a crash before the checkpoint
            # below redoes the unit, and every write it had made is found and skipped.
            writer = Writer(shard, position_marker(unit[-1].last))
            staging.aggregates.write_closed(writer, writes.closed)
            staging.aggregates.correct(writer, writes.corrections)
            self._commit(shard, local, unit[-1].last, complete=False)
            through = unit[-1].last
        with self._lock:
            self._states.update(local.states)
            self._ledgers.update(local.ledgers)
        self._commit(shard, local, through, complete=True)

    def _readings(self, obj: RawObject) -> list[Reading]:
        """The object's readings of the wanted devices, decoded as the consumer decoded them."""
        out: list[Reading] = []
        for line in self._archive.get(obj.key):
            key = str(line.get("partition_key", ""))
            if not self.params.wants(key):
                continue
            data = str(line["data"]).encode("utf-8") if "data" in line else base64.b64decode(line.get("data_b64", ""))
            try:
                readings = decode_record(
                    data,
                    fallback_received_ms=int(line["approximate_arrival_ms"]),
                    future_tolerance_ms=self.params.future_tolerance_ms,
                    partition_key=key,
                ).readings
            except Exception:  # noqa: BLE001 - the consumer made such a record a dead letter, no readings
                readings = []
            out.extend(readings)
        return out

    def _fold(self, local: ShardMemory, readings: list[Reading], writes: UnitWrites) -> None:
        """One committed batch, exactly as ``consumer.protocol.commit`` computed it."""
        if not readings:
            return
        prior_states: dict[str, DeviceState] = {}
        prior_ledgers: dict[str, Ledger] = {}
        for device_id in {r.device_id for r in readings}:
            state = local.states.get(device_id) or self._states.get(device_id)
            ledger = local.ledgers.get(device_id) or self._ledgers.get(device_id)
            if state is not None:
                prior_states[device_id] = state
            if ledger is not None:
                prior_ledgers[device_id] = ledger
        result = compute_batch(readings, prior_states, self.rules)
        settled = settle(result, prior_ledgers)
        local.states.update(result.states)
        local.ledgers.update(settled.ledgers)
        writes.add(in_range(self.params, settled.closed), in_range(self.params, settled.corrections))

    # -- step 3: replace ----------------------------------------------------------------------

    def _replace(self, staging: Staging) -> Outcome:
        read_through = {shard: int(entry.get("through", -1)) for shard, entry in self.manifest.shards.items()}
        devices = sorted(d for d in self._states if self.params.wants(d))
        outcome = Outcome(devices=len(devices))

        def one(device_id: str) -> tuple[list[Difference], int, Any]:
            rebuilt = staging.ranges.read(device_id, self.params.first_ms, self.params.end_ms)
            stored = self._target.read(device_id, self.params.first_ms, self.params.end_ms)
            diffs, kept = differences(device_id, rebuilt, stored, read_through)
            if self.dry_run or not diffs:
                return diffs, kept, None
            changes = [Change(d.device_id, d.bucket, d.rebuilt, d.stored) for d in diffs]
            return diffs, kept, self._target.replace(changes)

        with ThreadPoolExecutor(self._workers, thread_name_prefix="rebuild-replace") as pool:
            for diffs, kept, result in pool.map(one, devices):
                outcome.differences.extend(diffs)
                outcome.kept += kept
                if result is not None:
                    outcome.written += result.written
                    outcome.deleted += result.deleted
                    outcome.refused.extend(result.refused)
        return outcome

    # -- the manifest and the checkpoints -------------------------------------------------------

    def _load_manifest(self) -> Manifest | None:
        if self._checkpoints is None:
            return None
        doc = self._checkpoints.get(manifest_key(self.params.rebuild_id))
        return None if doc is None else Manifest.from_doc(doc)

    def _save(self) -> None:
        if self._checkpoints is None:
            return
        with self._lock:
            doc = self.manifest.to_doc()
            self._checkpoints.put(manifest_key(self.params.rebuild_id), "rebuild", self.params.rebuild_id, doc)

    def _checkpoint_memory(self, key: str | None) -> ShardMemory:
        if key is None or self._checkpoints is None:
            return ShardMemory()
        return ShardMemory.from_doc(self._checkpoints.get(key) or {}, key)

    def _load_completed(self, order: Iterable[str]) -> None:
        """The final device states of the shards a killed run completed, ancestors first."""
        completed = self.manifest.completed()
        for shard in order:
            if shard in completed:
                memory = self._checkpoint_memory(self.manifest.shards[shard].get("state_key"))
                self._states.update(memory.states)
                self._ledgers.update(memory.ledgers)

    def _commit(self, shard: str, local: ShardMemory, through: int, *, complete: bool) -> None:
        if self._checkpoints is None:
            return
        old = self.manifest.shards.get(shard, {}).get("state_key")
        key = checkpoint_key(self.params.rebuild_id, shard, through)
        if key != old:
            self._checkpoints.put(key, shard, str(through), local.to_doc())
        with self._lock:
            self.manifest.shards[shard] = {"through": str(through), "state_key": key, "complete": complete}
        self._save()
        if old is not None and old != key:
            self._checkpoints.delete(old)

    def _retire_checkpoints(self) -> None:
        assert self._checkpoints is not None
        for entry in self.manifest.shards.values():
            if entry.get("state_key"):
                self._checkpoints.delete(entry["state_key"])


def _prefetched(pool: ThreadPoolExecutor, fn: Callable[[T], U], items: list[T], *, ahead: int) -> Iterator[tuple[T, U]]:
    """``(item, fn(item))`` in order, with up to ``ahead`` items fetched in the background."""
    pending: deque[tuple[T, Future[U]]] = deque()
    rest = iter(items)
    for item in rest:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= ahead:
            break
    while pending:
        item, future = pending.popleft()
        following = next(rest, None)
        if following is not None:
            pending.append((following, pool.submit(fn, following)))
        yield item, future.result()
