"""Live resharding: split, merge and UpdateShardCount while a producer writes and a worker reads.

Each closed shard must be drained to its end (its lease checkpointed at ``SHARD_END``), its
children must start after it, and the devices that moved to a child must keep their register
state: no new baseline (that would lose the energy across the boundary) and no second count
(that would double it). So the aggregates must equal an independent computation from the
input, the meters' registers must show no reset, and every record must be archived once.
"""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from consumer.reshard import open_shards, wait_active
from devstack.loadgen import Fleet
from devstack.stack import wait_until, wattstream_command
from tests.integration.producer import Producer
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

pytestmark = pytest.mark.integration

DEVICES = 60


def _settled(pipeline) -> bool:
    """Every closed shard checkpointed at its end, every open shard read by the worker."""
    leases = pipeline.leases()
    open_ids = {s["ShardId"] for s in open_shards(pipeline.kinesis, pipeline.settings.stream_name)}
    closed_done = all(
        lease.get("checkpoint") == "SHARD_END" for shard, lease in leases.items() if shard not in open_ids
    )
    open_read = all(
        leases.get(shard, {}).get("checkpoint") not in (None, "TRIM_HORIZON", "SHARD_END") for shard in open_ids
    )
    return closed_done and open_read


def _archived_on(pipeline, shard_ids: set[str]) -> bool:
    archive = pipeline.archive
    return any(line["shard_id"] in shard_ids for key in archive.keys("raw/") for line in archive.get(key))


def test_split_merge_and_update_shard_count_keep_the_aggregates_exact(pipeline) -> None:
    kinesis, stream = pipeline.kinesis, pipeline.settings.stream_name
    producer = Producer(kinesis, stream, Fleet(DEVICES, interval_ms=15_000, seed=21), period_s=0.4)
    producer.wave()
    producer.start()
    consumer = pipeline.start_consumer()
    wait_until(lambda: _settled(pipeline), 180, 1.0, "both shards read")

    # Split the first shard at the middle of its hash keys.
    first = open_shards(kinesis, stream)[0]
    low, high = (int(first["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kinesis.split_shard(StreamName=stream, ShardToSplit=first["ShardId"], NewStartingHashKey=str((low + high) // 2 + 1))
    wait_active(kinesis, stream, 60)
    children = [s for s in open_shards(kinesis, stream) if s.get("ParentShardId") == first["ShardId"]]
    assert len(children) == 2
    wait_until(
        lambda: _settled(pipeline) and _archived_on(pipeline, {c["ShardId"] for c in children}),
        240,
        1.0,
        "the split's parent drained and its children read",
    )

    # Merge the two children back into one.
    lower, upper = sorted(children, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    kinesis.merge_shards(StreamName=stream, ShardToMerge=lower["ShardId"], AdjacentShardToMerge=upper["ShardId"])
    wait_active(kinesis, stream, 60)
    merged = [s for s in open_shards(kinesis, stream) if s.get("AdjacentParentShardId")]
    assert len(merged) == 1
    wait_until(
        lambda: _settled(pipeline) and _archived_on(pipeline, {merged[0]["ShardId"]}),
        240,
        1.0,
        "the merge's parents drained and the child read",
    )

    # The operator's command: every open shard closes, children cover the same hash keys.
    before = {s["ShardId"] for s in open_shards(kinesis, stream)}
    out = subprocess.run(
        wattstream_command("reshard", "--shards", "3"), capture_output=True, text=True, timeout=120, check=True
    ).stdout
    now_open = open_shards(kinesis, stream)
    assert len(now_open) == 3 and "2 -> 3 open shards" in out
    ranges = sorted(
        (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in now_open
    )
    assert ranges[0][0] == 0 and ranges[-1][1] == 2**128 - 1
    assert all(
        a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:], strict=False)
    ), "the open shards cover every hash key once"
    new = {s["ShardId"] for s in now_open} - before
    assert new, "UpdateShardCount opened no shard"
    wait_until(lambda: _settled(pipeline) and _archived_on(pipeline, new), 240, 1.0, "the new shards read")

    producer.stop()
    pipeline.wait_archived(set(producer.sequence_numbers), timeout_s=240)
    assert consumer.stop() == 0

    archived = Counter(pipeline.archived_sequence_numbers())
    assert set(archived) == set(producer.sequence_numbers)
    duplicated = {seq: n for seq, n in archived.items() if n > 1}
    assert not duplicated, f"records archived more than once: {list(duplicated.items())[:5]}"
    log = consumer.log_path.read_text(errors="replace")
    closed = {shard for shard, lease in pipeline.leases().items() if lease.get("checkpoint") == "SHARD_END"}
    assert log.count('"event": "shard_ended"') == len(closed) >= 1 + 2 + 1, "each closed shard ended once"
    assert '"flag": "reset"' not in log and '"reset":' not in log, "a moved device started a new baseline"
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(producer.payloads))
