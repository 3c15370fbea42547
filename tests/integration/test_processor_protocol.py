"""The flush/checkpoint protocol of one shard processor, step by step, against moto server.

These drive ``ShardProcessor`` directly with amazon_kclpy's own message objects and a
checkpointer that stands in for the daemon's, so crashes and zombies can be placed exactly:
after the manifest, in the middle of the DynamoDB writes, before the checkpoint.
"""

from __future__ import annotations

import base64
from collections import Counter

import orjson
import pytest
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, Record

from batcher import BucketAggregate, compute_batch
from batcher.ledger import Settlement, settle
from consumer.processor import ShardProcessor, build
from consumer.protocol import ShardMemory
from consumer.query import COLUMNS
from consumer.settings import Settings
from devstack.loadgen import Fleet
from readings import decode_record, to_rfc3339
from readings.errors import FencedError
from sinks.aggregates import AggregateStore, Writer
from sinks.live import LiveView
from sinks.position import position_marker
from tests.integration.reference import assert_same_aggregates, expected_aggregates, expected_local, stored_aggregates

pytestmark = pytest.mark.integration

SHARD = "shardId-000000000007"
BASE_SEQ = 49_680_617_152_851_519_470_963_732_905_516_059_121_142_655_817_896_427_522
RECEIVED_MS = 1_795_000_000_000


class Crash(BaseException):
    """The process dies here (BaseException, so nothing in the processor can catch it)."""


class Checkpointer:
    def __init__(self, fail_with: str | None = None) -> None:
        self.checkpoints: list[str] = []
        self.fail_with = fail_with

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        if self.fail_with == "crash":
            raise Crash()
        if self.fail_with:
            raise CheckpointError(self.fail_with)
        self.checkpoints.append(sequence_number or "SHARD_END")


def make_records(rounds: int, devices: int = 8, per_message: int = 5) -> tuple[list[Record], list[bytes]]:
    fleet = Fleet(devices, interval_ms=60_000, seed=3)
    payloads = []
    for k in range(rounds):
        ts = RECEIVED_MS - 86_400_000 + k * per_message * fleet.interval_ms
        payloads.extend(data for _, data in fleet.messages(ts, per_message, RECEIVED_MS))
    records = [
        Record(
            {
                "data": base64.b64encode(p).decode(),
                "partitionKey": orjson.loads(p)["device_id"],
                "sequenceNumber": str(BASE_SEQ + i * 1_000_000),
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": RECEIVED_MS,
            }
        )
        for i, p in enumerate(payloads)
    ]
    return records, payloads


def feed(proc: ShardProcessor, records: list[Record], checkpointer: Checkpointer) -> None:
    message = ProcessRecordsInput({"action": "processRecords", "records": [], "millisBehindLatest": 0})
    message._records = records
    message._checkpointer = checkpointer
    proc.process_records(message)


def start(settings: Settings, checkpoint: str = "TRIM_HORIZON") -> ShardProcessor:
    proc = build(settings)
    proc.initialize(
        InitializeInput(
            {"action": "initialize", "shardId": SHARD, "sequenceNumber": checkpoint, "subSequenceNumber": 0}
        )
    )
    return proc


@pytest.fixture
def settings(pipeline) -> Settings:
    return Settings(max_records=16, max_age_s=3600)


def raw_sequence_numbers(pipeline) -> Counter:
    return Counter(pipeline.archived_sequence_numbers())


def test_crash_before_checkpoint_replays_the_same_batch(pipeline, settings: Settings) -> None:
    records, payloads = make_records(rounds=6)  # 48 records: three batches of 16
    first = start(settings)
    done = Checkpointer()
    feed(first, records[:16], done)
    assert done.checkpoints == [records[15].sequence_number]
    with pytest.raises(Crash):
        feed(first, records[16:32], Checkpointer(fail_with="crash"))  # stored, never checkpointed

    second = start(settings, checkpoint=done.checkpoints[-1])
    # The replay must end where the interrupted batch ended, even with more records at hand.
    again = Checkpointer()
    feed(second, records[16:], again)
    assert again.checkpoints[0] == records[31].sequence_number
    second.shutdown_requested(type("S", (), {"checkpointer": again})())
    assert again.checkpoints[-1] == records[-1].sequence_number

    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))
    archived = raw_sequence_numbers(pipeline)
    assert set(archived) == {r.sequence_number for r in records} and max(archived.values()) == 1


def test_zombie_is_fenced_before_it_writes(pipeline, settings: Settings) -> None:
    records, payloads = make_records(rounds=2)
    zombie = start(settings)
    owner = start(settings)  # takes the shard over: a higher epoch
    zombie_cp = Checkpointer()
    feed(zombie, records, zombie_cp)
    assert zombie_cp.checkpoints == [] and pipeline.items() == []

    owner_cp = Checkpointer()
    feed(owner, records, owner_cp)
    assert owner_cp.checkpoints == [records[-1].sequence_number]
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))


def test_lease_lost_at_checkpoint_leaves_the_replay_to_the_new_owner(pipeline, settings: Settings) -> None:
    records, payloads = make_records(rounds=4)
    old = start(settings)
    lost = Checkpointer(fail_with="ShutdownException")
    feed(old, records[:16], lost)  # everything written, but the lease moved before the checkpoint
    assert lost.checkpoints == []
    feed(old, records[16:], Checkpointer())  # a fenced processor ignores what still arrives
    assert not pipeline.dead_letters()

    new = start(settings)
    cp = Checkpointer()
    feed(new, records, cp)
    assert cp.checkpoints == [records[15].sequence_number, records[31].sequence_number]
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))
    assert max(raw_sequence_numbers(pipeline).values()) == 1


def _settled(records: list[Record], memory: ShardMemory, rules) -> tuple[Settlement, ShardMemory]:
    readings = [r for rec in records for r in decode_record(rec.binary_data, fallback_received_ms=RECEIVED_MS).readings]
    result = compute_batch(readings, memory.states, rules)
    settled = settle(result, memory.ledgers)
    return settled, ShardMemory({**memory.states, **result.states}, {**memory.ledgers, **settled.ledgers})


def test_zombie_writes_after_the_new_owner_moved_on_change_nothing(pipeline, settings: Settings) -> None:
    records, payloads = make_records(rounds=8, per_message=40)  # four batches of 80 minutes
    owner = start(settings)
    feed(owner, records, Checkpointer())
    before = pipeline.items()
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))

    # A zombie that held the first batch in memory and passed its manifest write just before the
    # owner's claim gets to write the batch only now: what the owner wrote later must stand.
    rules = settings.register_rules
    settled, _ = _settled(records[:16], ShardMemory(), rules)
    writer = Writer(SHARD, position_marker(records[15].sequence_number))
    store = AggregateStore(settings.client("dynamodb"), settings.aggregates_table)
    live = LiveView(settings.client("dynamodb"), settings.aggregates_table, settings.live_groups)
    outcome = store.write_closed(writer, settled.closed)  # the owner made these very writes: skipped
    assert outcome.written == 0 and outcome.skipped == len(settled.closed) > 0
    with pytest.raises(FencedError):
        live.write(SHARD, writer.marker, settled.live)
    assert pipeline.items() == before


def test_a_parent_shard_writer_arriving_after_the_child_shard_is_refused(pipeline, settings: Settings) -> None:
    """Resharding: the child shard takes the devices over; a late parent writer changes nothing."""
    records, payloads = make_records(rounds=8, per_message=40)
    rules = settings.register_rules
    store = AggregateStore(settings.client("dynamodb"), settings.aggregates_table)
    parent = Writer("shardId-parent", position_marker(records[31].sequence_number), frozenset({"shardId-child"}))
    child = Writer("shardId-child", position_marker(records[63].sequence_number))
    first, memory = _settled(records[:32], ShardMemory(), rules)
    second, _ = _settled(records[32:], memory, rules)
    store.write_closed(parent, first.closed)
    store.write_closed(child, second.closed)
    # A late reading for an hour the parent closed: a correction by the child.
    corrected_key = next(iter(first.closed))
    extra = BucketAggregate(samples=1)
    store.correct(child, {corrected_key: extra})
    items = {(i["device_id"], i["bucket"]): i for i in pipeline.items()}
    assert items[corrected_key]["samples"] == first.closed[corrected_key].samples + 1
    # Two marker attributes per item, whoever wrote it: they never pile up with resharding.
    assert all({"w", "s"} <= set(i) and not any(k.startswith(("applied#", "v#")) for k in i) for i in items.values())

    # A stalled worker of the parent shard writes its batch again, late: the item the child
    # corrected is refused (a descendant wrote it); the others it had written are skipped.
    with pytest.raises(FencedError):
        store.correct(parent, {corrected_key: first.closed[corrected_key]})
    assert store.write_closed(parent, {k: v for k, v in first.closed.items() if k != corrected_key}).written == 0
    assert {(i["device_id"], i["bucket"]): i for i in pipeline.items()} == items


def test_a_replay_that_cannot_start_where_the_batch_began_batches_by_policy(pipeline, settings: Settings) -> None:
    """Records of the interrupted batch gone (retention, a reset lease table): no endless wait."""
    records, payloads = make_records(rounds=4)
    first = start(settings)
    with pytest.raises(Crash):
        feed(first, records[:16], Checkpointer(fail_with="crash"))  # batch 1 begun, never checkpointed
    second = start(settings)  # the checkpoint says TRIM_HORIZON: batch 1 is pending
    cp = Checkpointer()
    feed(second, records[4:], cp)  # but the stream now starts later
    assert cp.checkpoints == [records[19].sequence_number]  # the policy's 16 records, not the old boundary
    # What the crashed flush had written is not counted again (dedup on device and seq).
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads[:20]))


def test_query_prints_every_interval_closed_or_open(pipeline, settings: Settings) -> None:
    """`wattstream query` reads through the read function: closed hours and the open one alike,
    in local intervals of any zone, equal to an independent computation from the readings."""
    from click.testing import CliRunner

    from consumer.cli import main

    records, payloads = make_records(rounds=4, per_message=40)
    feed(start(settings), records, Checkpointer())
    device = orjson.loads(payloads[0])["device_id"]
    day = to_rfc3339(RECEIVED_MS - 86_400_000)[:10]
    cases = [("1h", "UTC", 60), ("1d", "UTC", None), ("15m", "Asia/Kathmandu", 15), ("30m", "Australia/Adelaide", 30)]
    for every, tz, minutes in cases:
        want = {k: f for (d, k), f in expected_local(payloads, tz, minutes).items() if d == device}
        result = CliRunner().invoke(
            main, ["query", device, "--from", day, "--to", "2026-12-01", "--every", every, "--tz", tz]
        )
        assert result.exit_code == 0, result.output + result.stderr
        header, *lines = result.stdout.splitlines()
        assert header == ",".join(COLUMNS)
        got = {}
        for line in lines:
            row = dict(zip(COLUMNS, line.split(","), strict=True))
            assert row["device_id"] == device and row["tz"] == tz and row["register"] == "1.8.0"
            if row["quality"] != "N":
                got[row["local_start"]] = (float(row["energy_wh"]), int(row["samples"]))
            else:
                assert float(row["energy_wh"]) == 0.0 and row["local_start"] not in want
        assert set(got) == set(want), (every, tz)
        for start_text, figures in want.items():
            assert got[start_text][1] == figures["samples"], start_text
            assert abs(got[start_text][0] - figures["energy_wh"]) < 1e-3, start_text
        total_wh = float(result.stderr.split("(")[1].split(" Wh")[0])
        assert abs(total_wh - sum(f["energy_wh"] for f in want.values())) < 1e-2


def test_a_child_shard_takes_its_devices_state_from_the_parent(pipeline, settings: Settings) -> None:
    """After a split or merge the child continues each device where the parent's last batch left it."""
    from amazon_kclpy.messages import ShardEndedInput

    from consumer.lineage import Lineage

    records, payloads = make_records(rounds=4, per_message=40)
    parent = build(settings)
    parent.initialize(
        InitializeInput(
            {
                "action": "initialize",
                "shardId": "shardId-parent",
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
        )
    )
    feed(parent, records[:16], Checkpointer())
    ended = ShardEndedInput({"action": "shardEnded"})
    ended._checkpointer = parent_cp = Checkpointer()
    parent.shard_ended(ended)
    assert parent_cp.checkpoints[-1] == "SHARD_END"

    child = build(settings)
    child._lineage_of = lambda shard: Lineage(shard, parents=("shardId-parent",))
    child.initialize(
        InitializeInput(
            {
                "action": "initialize",
                "shardId": "shardId-child",
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
        )
    )
    assert len(child.memory.states) == 8
    # The producer retried some records across the reshard: the child sees them again.
    feed(child, records[12:], Checkpointer())
    child.shutdown_requested(type("S", (), {"checkpointer": Checkpointer()})())
    # Every reading once, and the energy between the parent's last and the child's first reading counted.
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))


def test_late_messages_end_in_the_hours_of_in_order_arrival(pipeline, settings: Settings) -> None:
    """Round 3 of every device (11:47-12:06) arrives a round late, after hour 11 was written: it
    re-splits the span 11:46-12:07 that rounds 2 and 4 left, so energy moves between hour 11
    (a correction) and hour 12. The stored hours equal the in-order reference
    (readings taken in seq order)."""
    records, payloads = make_records(rounds=6, per_message=20)  # 8 devices, 20 minutes per round
    rounds = [records[k * 8 : (k + 1) * 8] for k in range(6)]
    arrival = [*rounds[0], *rounds[1], *rounds[2], *rounds[4], *rounds[3], *rounds[5]]
    for i, record in enumerate(arrival):  # the stream numbers records in arrival order
        record._sequence_number = str(BASE_SEQ + i * 1_000_000)
    proc = start(settings)
    done = Checkpointer()
    feed(proc, arrival, done)
    proc.shutdown_requested(type("S", (), {"checkpointer": done})())
    assert len(done.checkpoints) == 3
    stored = stored_aggregates(pipeline.aggregates())
    assert_same_aggregates(stored, expected_aggregates(payloads))
