"""Several workers share one stream through KCL leases, and survive losing one.

Four shards, three ``wattstream consume`` workers, a producer writing all along. The leases
spread over the workers; one worker is killed with SIGKILL and its shards move to the others;
it is started again (same worker id, as an ECS slot would give it) and takes leases back; a
second worker is stopped with SIGTERM (flush, checkpoint, exit 0) and its shards move too. At
the end the aggregates equal an independent computation from the input, and every record sits
in the raw archive exactly once.
"""

from __future__ import annotations

from collections import Counter

import pytest

from devstack.loadgen import Fleet
from devstack.stack import ConsumerProcess, wait_until
from tests.integration.producer import Producer
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

pytestmark = pytest.mark.integration

SHARDS = 4
WORKERS = 3
DEVICES = 80


def _spread(pipeline, live: set[str]) -> bool:
    """Every shard owned by a live worker, and every live worker holding a shard."""
    owners = pipeline.owners()
    return len(owners) == SHARDS and set(owners.values()) == live


@pytest.mark.shards(SHARDS)
def test_leases_spread_move_on_kill_and_return(pipeline) -> None:
    app = pipeline.settings.application_name
    ids = [f"{app}-w{i}" for i in range(WORKERS)]
    producer = Producer(pipeline.kinesis, pipeline.settings.stream_name, Fleet(DEVICES, interval_ms=15_000, seed=8))
    producer.wave()
    producer.start()

    def start(worker_id: str) -> ConsumerProcess:
        return pipeline.start_consumer(WATTSTREAM_WORKER_ID=worker_id)

    workers = {worker_id: start(worker_id) for worker_id in ids}
    wait_until(lambda: _spread(pipeline, set(ids)), 180, 1.0, "leases spread over the three workers")

    # kill -9 the worker with the most shards: they move to the two others.
    owners = Counter(pipeline.owners().values())
    victim = max(ids, key=lambda w: owners[w])
    workers[victim].kill()
    survivors = set(ids) - {victim}
    wait_until(lambda: _spread(pipeline, survivors), 180, 1.0, "the killed worker's shards taken over")

    # The same worker id again: leases rebalance onto it.
    workers[victim] = start(victim)
    wait_until(lambda: _spread(pipeline, set(ids)), 240, 1.0, "leases rebalanced onto the restarted worker")

    # SIGTERM another one: it flushes, checkpoints and exits 0; its shards move.
    leaving = next(w for w in ids if w != victim)
    assert workers[leaving].stop() == 0
    log = workers[leaving].log_path.read_text(errors="replace")
    assert '"event": "shutdown_flushed"' in log
    remaining = set(ids) - {leaving}
    wait_until(lambda: _spread(pipeline, remaining), 180, 1.0, "the stopped worker's shards taken over")

    producer.stop()
    pipeline.wait_archived(set(producer.sequence_numbers), timeout_s=240)
    for worker_id in remaining:
        assert workers[worker_id].stop() == 0

    archived = Counter(pipeline.archived_sequence_numbers())
    assert set(archived) == set(producer.sequence_numbers)
    duplicated = {seq: n for seq, n in archived.items() if n > 1}
    assert not duplicated, f"records archived more than once: {list(duplicated.items())[:5]}"
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(producer.payloads))
