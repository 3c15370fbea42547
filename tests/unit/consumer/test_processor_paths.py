"""Every path of ``ShardProcessor`` against the in-memory stores: flushes, crashes, fences, ends.

The processor gets the daemon's own messages (JSON lines decoded by amazon_kclpy's dispatcher)
and a checkpointer that records what it is asked to checkpoint. A crash is a ``Crash`` raised
between two steps of a commit (``sinks.memory.crash_at``); a fresh processor on the same stores
then starts from the last checkpoint, as the daemon's restart would, and the stores must end
exactly as a run without the crash left them.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.dispatch import message_decode

from consumer.lineage import Lineage
from consumer.processor import Phase, ShardProcessor
from consumer.protocol import Stores
from consumer.settings import Settings
from devstack.loadgen import Fleet, rule_record
from readings import to_rfc3339
from sinks.live import group_of, hash_key, marker_attr
from sinks.memory import Crash, MemoryBackend, MemoryTable, crash_at, on_call
from sinks.position import position_marker
from sinks.read import logical_buckets
from sinks.snapshot import snapshot_key
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

SHARD = "shardId-000000000007"
BASE_SEQ = 49_680_617_152_851_519_470_963_732_905_516_059_121_142_655_817_896_427_522
RECEIVED_MS = 1_795_000_000_000
NOW_MS = RECEIVED_MS + 60_000
BATCH = 16
SETTINGS = Settings(max_records=BATCH, max_age_s=3600, live_groups=4)


# -- the daemon's side -------------------------------------------------------------------------


def message(action: str, **fields: Any) -> Any:
    """A message as amazon_kclpy decodes the daemon's JSON line."""
    return json.loads(json.dumps({"action": action, **fields}), object_hook=message_decode)


@dataclass
class Checkpointer:
    """Records checkpoints; the ``fail_at``-th call dies (``Crash``) or raises ``CheckpointError``."""

    fail_at: int | None = None
    fail_with: str = "crash"
    checkpoints: list[str] = field(default_factory=list)
    calls: int = 0

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            if self.fail_with == "crash":
                raise Crash("the process dies at the checkpoint")
            raise CheckpointError(self.fail_with)
        self.checkpoints.append(sequence_number or "SHARD_END")


def records(payloads: list[tuple[str, bytes]], first_sequence_number: int = BASE_SEQ) -> list[dict[str, Any]]:
    return [
        {
            "action": "record",
            "data": base64.b64encode(data).decode(),
            "partitionKey": key,
            "sequenceNumber": str(first_sequence_number + i * 1_000_000),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": RECEIVED_MS + i,
        }
        for i, (key, data) in enumerate(payloads)
    ]


def after(stream: list[dict[str, Any]], checkpoint: str) -> list[dict[str, Any]]:
    """What the daemon delivers to a processor that starts at ``checkpoint``."""
    return stream if not checkpoint.isdigit() else [r for r in stream if int(r["sequenceNumber"]) > int(checkpoint)]


def start(
    stores: Stores,
    checkpoint: str = "TRIM_HORIZON",
    *,
    owner: str = "worker-a",
    shard: str = SHARD,
    lineage_of: Callable[[str], Lineage] = Lineage,
    settings: Settings = SETTINGS,
    clock_ms: Callable[[], int] = lambda: NOW_MS,
) -> ShardProcessor:
    proc = ShardProcessor(settings, stores=stores, lineage_of=lineage_of, clock_ms=clock_ms, owner=owner)
    message("initialize", shardId=shard, sequenceNumber=checkpoint, subSequenceNumber=0).dispatch(None, proc)
    return proc


def feed(proc: ShardProcessor, stream: list[dict[str, Any]], checkpointer: Checkpointer) -> None:
    message("processRecords", records=stream, millisBehindLatest=0).dispatch(checkpointer, proc)


def shutdown(proc: ShardProcessor, checkpointer: Checkpointer) -> None:
    message("shutdownRequested").dispatch(checkpointer, proc)


def stores_of(backend: MemoryBackend, **replaced: Any) -> Stores:
    parts = {name: getattr(backend, name) for name in ("manifests", "archive", "snapshots", "aggregates", "live")}
    return Stores(**{**parts, **replaced})


def contents(backend: MemoryBackend) -> dict[str, Any]:
    """Everything stored, but the claim (epoch, owner): each new processor claims the shard anew."""
    out = backend.contents()
    out["state"] = {
        key: {k: v for k, v in item.items() if k not in ("epoch", "owner")} for key, item in out["state"].items()
    }
    return out


def read_side(backend: MemoryBackend) -> dict:
    """Hours and days, closed or open, as a reader sees them."""
    buckets = logical_buckets(backend.aggregates_table.items())
    rows = [{"device_id": d, "bucket": b, **figures} for (d, b), figures in buckets.items()]
    return stored_aggregates(rows)


# -- the streams ---------------------------------------------------------------------------------


def rounds(count: int, per_message: int = 20) -> list[list[tuple[str, bytes]]]:
    """``count`` rounds of one message per device, each ``per_message`` readings a minute apart."""
    fleet = Fleet(8, interval_ms=60_000, seed=3)
    start_ms = RECEIVED_MS - 86_400_000
    return [
        fleet.messages(start_ms + k * per_message * fleet.interval_ms, per_message, RECEIVED_MS) for k in range(count)
    ]


ROUNDS = rounds(6)
CLEAN = [m for r in ROUNDS for m in r]
"""48 messages of well-behaved meters: three batches, checkable against the plain reference."""

HELD = ROUNDS[0][0]
POISON = ("box-0002", b'{"v": 1, "device_id": "box-0002", "readings": [')
RICH = [*ROUNDS[0][1:], *ROUNDS[1], *ROUNDS[2], HELD, POISON, *ROUNDS[3], ROUNDS[1][3], *ROUNDS[4], *ROUNDS[5]]
"""50 records whose second batch (16-31) holds every kind of write: buckets it closes, a message
held back since the first round (late readings: corrections of a closed hour), a record that is
no JSON (a dead letter); the third batch a redelivered message (duplicates); the fourth, two
records, ends at shutdown."""


def run(backend: MemoryBackend, stream: list[dict[str, Any]], stores: Stores | None = None) -> Checkpointer:
    """One processor over the whole stream, then shutdown."""
    proc = start(stores or stores_of(backend))
    checkpointer = Checkpointer()
    feed(proc, stream, checkpointer)
    shutdown(proc, checkpointer)
    return checkpointer


@functools.cache
def crash_free() -> tuple[dict[str, Any], list[str]]:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    checkpointer = run(backend, records(RICH))
    return contents(backend), checkpointer.checkpoints


def seq(stream: list[dict[str, Any]], index: int) -> str:
    return stream[index]["sequenceNumber"]


# -- a normal flush ------------------------------------------------------------------------------


def test_each_batch_is_archived_aggregated_snapshotted_and_checkpointed_at_its_last_record() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(CLEAN)
    proc = start(stores_of(backend))
    checkpointer = Checkpointer()
    feed(proc, stream, checkpointer)
    assert checkpointer.checkpoints == [seq(stream, 15), seq(stream, 31), seq(stream, 47)]
    assert proc.phase is Phase.RUNNING

    archived = [line["sequence_number"] for key in backend.archive.keys("raw/") for line in backend.archive.get(key)]
    assert sorted(archived) == sorted(r["sequenceNumber"] for r in stream)
    assert len(backend.archive.keys("raw/")) == 3 and backend.archive.keys("dead-letter/") == []
    # One snapshot left: the last batch's; the ones before are retired once the next is checkpointed.
    assert backend.bucket.keys("state/") == [snapshot_key(SHARD, seq(stream, 47))]
    assert set(backend.snapshots.get(snapshot_key(SHARD, seq(stream, 47)))) == {d for d, _ in ROUNDS[0]}
    manifest = backend.manifests.read(SHARD)
    assert (manifest.first_sequence_number, manifest.last_sequence_number, manifest.records) == (
        seq(stream, 32),
        seq(stream, 47),
        16,
    )
    assert manifest.prev_state_key == snapshot_key(SHARD, seq(stream, 31))

    items = backend.aggregates_table.items()
    assert {i["s"] for i in items if "s" in i} <= {position_marker(seq(stream, n)) for n in (15, 31, 47)}
    assert any(i["bucket"].startswith("h#") for i in items)  # hours were closed, not only live values
    assert_same_aggregates(read_side(backend), expected_aggregates(p for _, p in CLEAN))


class Recording:
    """A store whose every call is noted, in one list shared by all the stores."""

    def __init__(self, name: str, store: Any, calls: list[tuple[str, str, tuple]]) -> None:
        self._name, self._store, self._calls = name, store, calls

    def __getattr__(self, method: str) -> Any:
        attribute = getattr(self._store, method)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((self._name, method, args))
            return attribute(*args, **kwargs)

        return recorded


def test_the_crashes_below_fall_in_the_second_batch_which_reaches_every_step() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    calls: list[tuple[str, str, tuple]] = []
    names = ("manifests", "archive", "snapshots", "aggregates", "live")
    run(backend, records(RICH), stores_of(backend, **{n: Recording(n, getattr(backend, n), calls) for n in names}))
    begun = [i for i, (store, method, _) in enumerate(calls) if method == "begin_batch"]
    assert len(begun) == 4
    second = calls[begun[1] : begun[2]]
    assert [(store, method) for store, method, _ in second] == [
        ("manifests", "begin_batch"),
        ("archive", "put"),
        ("archive", "put"),
        ("aggregates", "write_closed"),
        ("aggregates", "correct"),
        ("live", "write"),
        ("snapshots", "put"),
        ("snapshots", "delete"),
    ]
    by_name = {(store, method): args for store, method, args in second}
    assert by_name[("aggregates", "write_closed")][1] and by_name[("aggregates", "correct")][1]
    assert by_name[("archive", "put")][0].startswith("dead-letter/")
    for store, method, call, _ in CRASHES.values():
        nth = [i for i, (s, m, _) in enumerate(calls) if (s, m) == (store, method)][call - 1]
        assert begun[1] <= nth < begun[2], (store, method, call)


# -- a crash between any two steps ---------------------------------------------------------------

# The second batch's calls: the manifest's and the raw object's are each store's second call,
# its dead letters the archive's third; a crash "after" a call lets that call take effect.
CRASHES = {
    "before_the_manifest": ("manifests", "begin_batch", 2, False),
    "manifest|archive": ("manifests", "begin_batch", 2, True),
    "raw_object|dead_letters": ("archive", "put", 2, True),
    "archive|closed_buckets": ("archive", "put", 3, True),
    "closed_buckets|corrections": ("aggregates", "write_closed", 2, True),
    "corrections|live_view": ("aggregates", "correct", 2, True),
    "live_view|snapshot": ("live", "write", 2, True),
    "snapshot|checkpoint": ("snapshots", "put", 2, True),
}


def crash_and_replay(backend: MemoryBackend, stores: Stores, first: Checkpointer | None = None) -> list[str]:
    """Run until the crash, then a fresh processor from the last checkpoint; all checkpoints."""
    stream = records(RICH)
    first = first or Checkpointer()
    proc = start(stores)
    with pytest.raises(Crash):
        feed(proc, stream, first)
    checkpoint = first.checkpoints[-1]
    second = Checkpointer()
    restarted = start(stores_of(backend), checkpoint, owner="worker-b")
    feed(restarted, after(stream, checkpoint), second)
    shutdown(restarted, second)
    return first.checkpoints + second.checkpoints


@pytest.mark.parametrize("store,method,call,after_call", CRASHES.values(), ids=CRASHES.keys())
def test_a_crash_between_two_steps_ends_as_if_it_never_happened(
    store: str, method: str, call: int, after_call: bool
) -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stores = stores_of(backend, **{store: crash_at(getattr(backend, store), method, call=call, after=after_call)})
    checkpoints = crash_and_replay(backend, stores)
    clean, clean_checkpoints = crash_free()
    assert checkpoints == clean_checkpoints
    assert contents(backend) == clean


def test_a_crash_at_the_checkpoint_ends_as_if_it_never_happened() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    checkpoints = crash_and_replay(backend, stores_of(backend), Checkpointer(fail_at=2))
    assert (checkpoints, contents(backend)) == (crash_free()[1], crash_free()[0])


@pytest.mark.parametrize("table_call", [1, 2, 5], ids=lambda n: f"write_{n}")
def test_a_crash_in_the_middle_of_the_dynamodb_writes_ends_as_if_it_never_happened(table_call: int) -> None:
    # Count the first batch's item writes, then die at the n-th item write of the second.
    counter = crash_at(MemoryTable(), "put", call=10**9)
    probe_backend = MemoryBackend(live_groups=SETTINGS.live_groups, aggregates_table=counter)
    feed(start(stores_of(probe_backend)), records(RICH)[:BATCH], Checkpointer())
    first_batch_puts = counter.calls

    table = MemoryTable()
    backend = MemoryBackend(live_groups=SETTINGS.live_groups, aggregates_table=table)
    hooked = MemoryBackend(
        live_groups=SETTINGS.live_groups,
        state_table=backend.state_table,
        bucket=backend.bucket,
        aggregates_table=crash_at(table, "put", call=first_batch_puts + table_call),
    )
    checkpoints = crash_and_replay(backend, stores_of(hooked))
    assert (checkpoints, contents(backend)) == (crash_free()[1], crash_free()[0])


def test_a_crash_between_the_live_groups_ends_as_if_it_never_happened() -> None:
    first_batch = {key for key, _ in RICH[:BATCH]}
    second_batch = {key for key, _ in RICH[BATCH : 2 * BATCH]}
    groups = {group_of(device, SETTINGS.live_groups) for device in first_batch}
    assert len({group_of(device, SETTINGS.live_groups) for device in second_batch}) > 1
    table = MemoryTable()
    backend = MemoryBackend(live_groups=SETTINGS.live_groups, aggregates_table=table)
    # One update per group the first batch touched; the second batch dies after its first.
    hooked = MemoryBackend(
        live_groups=SETTINGS.live_groups,
        state_table=backend.state_table,
        bucket=backend.bucket,
        aggregates_table=crash_at(table, "update", call=len(groups) + 1, after=True),
    )
    checkpoints = crash_and_replay(backend, stores_of(hooked))
    assert (checkpoints, contents(backend)) == (crash_free()[1], crash_free()[0])


def test_a_crash_after_the_checkpoint_leaves_only_the_old_snapshot_behind() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stores = stores_of(backend, snapshots=crash_at(backend.snapshots, "delete", call=1))
    checkpoints = crash_and_replay(backend, stores)
    clean, clean_checkpoints = crash_free()
    assert checkpoints == clean_checkpoints
    got = contents(backend)
    leftover = snapshot_key(SHARD, seq(records(RICH), 15))
    assert set(got["objects"]) - set(clean["objects"]) == {leftover}
    del got["objects"][leftover]
    assert got == clean


def test_a_second_crash_during_the_replay_is_replayed_too() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(RICH)
    first = Checkpointer()
    with pytest.raises(Crash):
        feed(start(stores_of(backend, live=crash_at(backend.live, "write", call=2))), stream, first)
    replaying = start(
        stores_of(backend, archive=crash_at(backend.archive, "put", call=1, after=True)),
        first.checkpoints[-1],
        owner="worker-b",
    )
    assert replaying.phase is Phase.REPLAYING
    with pytest.raises(Crash):
        feed(replaying, after(stream, first.checkpoints[-1]), Checkpointer())
    last = Checkpointer()
    final = start(stores_of(backend), first.checkpoints[-1], owner="worker-c")
    feed(final, after(stream, first.checkpoints[-1]), last)
    shutdown(final, last)
    assert (first.checkpoints + last.checkpoints, contents(backend)) == (crash_free()[1], crash_free()[0])


# -- another worker owns the shard ---------------------------------------------------------------


def test_a_processor_whose_shard_was_claimed_since_is_fenced_and_writes_nothing() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(CLEAN)
    zombie = start(stores_of(backend), owner="worker-a")
    owner = start(stores_of(backend), owner="worker-b")
    before = contents(backend)
    zombie_cp = Checkpointer()
    feed(zombie, stream, zombie_cp)
    assert zombie.phase is Phase.FENCED and zombie_cp.checkpoints == []
    assert contents(backend) == before
    shutdown(zombie, zombie_cp)  # a fenced processor flushes nothing at shutdown either
    assert contents(backend) == before and zombie_cp.checkpoints == []

    owner_cp = Checkpointer()
    feed(owner, stream, owner_cp)
    assert owner_cp.checkpoints == [seq(stream, 15), seq(stream, 31), seq(stream, 47)]


def test_a_zombie_that_began_its_batch_before_the_takeover_changes_nothing_after_it() -> None:
    """The old owner passed its manifest write, then stalled while the new owner replayed and moved on."""
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(RICH)
    zombie_cp = Checkpointer()
    taken_over: list[Checkpointer] = []

    def takeover() -> None:
        checkpoint = zombie_cp.checkpoints[-1]
        owner_cp = Checkpointer()
        owner = start(stores_of(backend), checkpoint, owner="worker-b")
        assert owner.phase is Phase.REPLAYING
        feed(owner, after(stream, checkpoint), owner_cp)
        shutdown(owner, owner_cp)
        taken_over.append(owner_cp)

    # The zombie stalls between its second manifest and its raw object.
    zombie = start(stores_of(backend, archive=on_call(backend.archive, "put", takeover, call=2)))
    feed(zombie, stream, zombie_cp)
    assert zombie.phase is Phase.FENCED
    assert zombie_cp.checkpoints == [seq(stream, 15)]
    clean, clean_checkpoints = crash_free()
    assert zombie_cp.checkpoints + taken_over[0].checkpoints == clean_checkpoints
    assert contents(backend) == clean


def test_a_lease_lost_at_the_checkpoint_is_fenced_and_the_new_owner_skips_what_it_wrote() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(RICH)
    lost = Checkpointer(fail_at=2, fail_with="ShutdownException")
    proc = start(stores_of(backend))
    feed(proc, stream, lost)
    assert proc.phase is Phase.FENCED and lost.checkpoints == [seq(stream, 15)]
    written = contents(backend)
    feed(proc, stream, lost)  # what still arrives is ignored
    assert contents(backend) == written

    owner_cp = Checkpointer()
    owner = start(stores_of(backend), lost.checkpoints[-1], owner="worker-b")
    feed(owner, after(stream, lost.checkpoints[-1]), owner_cp)
    shutdown(owner, owner_cp)
    assert (lost.checkpoints + owner_cp.checkpoints, contents(backend)) == (crash_free()[1], crash_free()[0])


def test_lease_lost_drops_the_batch_and_checkpoints_nothing() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(CLEAN)
    proc = start(stores_of(backend))
    checkpointer = Checkpointer()
    feed(proc, stream[:20], checkpointer)  # one batch of 16 flushed, 4 records pending
    before = contents(backend)
    message("leaseLost").dispatch(None, proc)
    assert proc.phase is Phase.FENCED and len(proc.buffer) == 0
    feed(proc, stream[20:], checkpointer)
    shutdown(proc, checkpointer)
    assert checkpointer.checkpoints == [seq(stream, 15)] and contents(backend) == before

    new = Checkpointer()
    owner = start(stores_of(backend), checkpointer.checkpoints[-1], owner="worker-b")
    feed(owner, after(stream, checkpointer.checkpoints[-1]), new)
    assert new.checkpoints == [seq(stream, 31), seq(stream, 47)]
    assert_same_aggregates(read_side(backend), expected_aggregates(p for _, p in CLEAN))


# -- shutdown and shard end ----------------------------------------------------------------------


def test_shutdown_flushes_what_is_pending_and_checkpoints_it() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(CLEAN)
    proc = start(stores_of(backend))
    checkpointer = Checkpointer()
    feed(proc, stream[:10], checkpointer)
    assert checkpointer.checkpoints == []
    shutdown(proc, checkpointer)
    assert checkpointer.checkpoints == [seq(stream, 9)] and proc.phase is Phase.STOPPED
    assert backend.manifests.read(SHARD).trigger == "shutdown"
    stored = contents(backend)
    feed(proc, stream[10:], checkpointer)  # a stopped processor takes nothing more
    assert contents(backend) == stored and checkpointer.checkpoints == [seq(stream, 9)]


def test_shutdown_with_nothing_pending_checkpoints_nothing() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    proc = start(stores_of(backend))
    checkpointer = Checkpointer()
    shutdown(proc, checkpointer)
    assert checkpointer.checkpoints == [] and proc.phase is Phase.STOPPED
    assert backend.bucket.objects() == {} and backend.aggregates_table.items() == []


def test_shutdown_during_a_replay_stores_nothing_and_the_next_owner_replays_the_whole_batch() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(RICH)
    first = Checkpointer()
    with pytest.raises(Crash):
        feed(start(stores_of(backend, archive=crash_at(backend.archive, "put", call=2))), stream, first)
    checkpoint = first.checkpoints[-1]
    replaying = start(stores_of(backend), checkpoint, owner="worker-b")
    assert replaying.phase is Phase.REPLAYING
    before = contents(backend)
    half = Checkpointer()
    feed(replaying, after(stream, checkpoint)[:8], half)
    shutdown(replaying, half)
    assert half.checkpoints == [] and replaying.phase is Phase.STOPPED
    assert contents(backend) == before

    last = Checkpointer()
    final = start(stores_of(backend), checkpoint, owner="worker-c")
    feed(final, after(stream, checkpoint), last)
    shutdown(final, last)
    assert (first.checkpoints + last.checkpoints, contents(backend)) == (crash_free()[1], crash_free()[0])


def test_a_replay_ends_exactly_at_the_interrupted_batch_whatever_the_policy_says() -> None:
    """The restarted worker batches 5 records at a time: the replayed batch still holds the 16
    the interrupted one held, and only after it does the policy cut again."""
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(RICH)
    first = Checkpointer()
    with pytest.raises(Crash):
        feed(start(stores_of(backend, live=crash_at(backend.live, "write", call=2))), stream, first)
    other = Settings(max_records=5, max_age_s=3600, live_groups=SETTINGS.live_groups)
    replay = Checkpointer()
    proc = start(stores_of(backend), first.checkpoints[-1], owner="worker-b", settings=other)
    assert proc.phase is Phase.REPLAYING
    pending = after(stream, first.checkpoints[-1])
    feed(proc, pending[:20], replay)
    assert replay.checkpoints == [seq(stream, 31)] and proc.phase is Phase.RUNNING
    assert backend.manifests.read(SHARD).trigger == "replay"
    assert backend.archive.keys("raw/")[1].endswith(f"/{seq(stream, 16)}-{seq(stream, 31)}.jsonl.gz")
    feed(proc, pending[20:21], replay)
    assert replay.checkpoints == [seq(stream, 31), seq(stream, 36)]


def test_a_split_continues_every_device_where_the_parent_left_it() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    children = {"shardId-000000000008": (0, 2**127 - 1), "shardId-000000000009": (2**127, 2**128 - 1)}
    lineages = {SHARD: Lineage(SHARD, descendants=frozenset(children))}
    lineages.update(
        {
            child: Lineage(child, parents=(SHARD,), ancestors=frozenset({SHARD}), hash_range=span)
            for child, span in children.items()
        }
    )

    parent_stream = records(CLEAN[:40])
    parent = start(stores_of(backend), lineage_of=lineages.__getitem__)
    parent_cp = Checkpointer()
    feed(parent, parent_stream, parent_cp)
    message("shardEnded").dispatch(parent_cp, parent)
    # The 8 records after the last full batch are flushed, then the shard's end is checkpointed.
    assert parent_cp.checkpoints == [
        seq(parent_stream, 15),
        seq(parent_stream, 31),
        seq(parent_stream, 39),
        "SHARD_END",
    ]
    assert parent.phase is Phase.STOPPED and backend.manifests.read(SHARD).trigger == "shard_end"

    devices = {device for device, _ in ROUNDS[0]}
    inherited: set[str] = set()
    for n, (child, (low, high)) in enumerate(children.items()):
        mine = [(d, p) for d, p in CLEAN[40:] if low <= hash_key(d) <= high]
        assert mine  # both children get devices
        proc = start(stores_of(backend), shard=child, lineage_of=lineages.__getitem__)
        assert set(proc.memory.states) == {d for d in devices if low <= hash_key(d) <= high}
        inherited |= set(proc.memory.states)
        cp = Checkpointer()
        feed(proc, records(mine, first_sequence_number=BASE_SEQ + (n + 1) * 10**12), cp)
        shutdown(proc, cp)
        assert len(cp.checkpoints) == 1
    assert inherited == devices
    assert_same_aggregates(read_side(backend), expected_aggregates(p for _, p in CLEAN))
    # Every live item was rewritten by a child, which removed the parent's marker from it.
    live_items = [i for i in backend.aggregates_table.items() if i["bucket"] == "live"]
    assert live_items and not any(marker_attr(SHARD) in i for i in live_items)


def test_a_shard_ending_right_after_its_replayed_batch_checkpoints_its_end() -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    stream = records(CLEAN[:24])  # a batch of 16, then the 8 records the shard's end closes
    first = Checkpointer()
    proc = start(stores_of(backend, snapshots=crash_at(backend.snapshots, "put", call=2, after=True)))
    feed(proc, stream, first)
    with pytest.raises(Crash):
        message("shardEnded").dispatch(first, proc)
    replaying = start(stores_of(backend), first.checkpoints[-1], owner="worker-b")
    assert replaying.phase is Phase.REPLAYING
    cp = Checkpointer()
    feed(replaying, after(stream, first.checkpoints[-1]), cp)
    message("shardEnded").dispatch(cp, replaying)
    assert cp.checkpoints == [seq(stream, 23), "SHARD_END"] and replaying.phase is Phase.STOPPED
    assert_same_aggregates(read_side(backend), expected_aggregates(p for _, p in CLEAN[:24]))


# -- what the stores refuse ----------------------------------------------------------------------


@pytest.mark.parametrize("thing", ["bucket", "device_id"])
def test_a_box_named_like_a_key_attribute_does_not_stop_the_shard(thing: str) -> None:
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    reading = {"seq": 1, "ts": to_rfc3339(RECEIVED_MS - 60_000), "energy_wh": 10.0}
    proc = start(stores_of(backend))
    checkpointer = Checkpointer()
    feed(proc, records([(thing, rule_record(thing, [reading], RECEIVED_MS))]), checkpointer)
    shutdown(proc, checkpointer)
    assert len(checkpointer.checkpoints) == 1
    assert orjson.loads(backend.archive.get(backend.archive.keys("raw/")[0])[0]["data"])["thing"] == thing
    buckets = logical_buckets(backend.aggregates_table.items())
    assert {device for device, _ in buckets} == {thing}, "the read side finds the box by its name"
