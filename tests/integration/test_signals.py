"""A signal to the consumer's whole process group ends in the last flush, not in lost batches.

Ctrl-C in a terminal, ``kill -- -PGID`` and some supervisors signal every process of the group:
the runner, the daemon and each record processor. The processors must leave shutdown to the
daemon (which asks them to flush and checkpoint), so the batches they hold when the signal
arrives are stored and checkpointed, and the consumer exits 0.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from devstack.loadgen import Fleet, put_records
from devstack.report import metric_sum, scrape
from devstack.stack import wait_until
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

pytestmark = pytest.mark.integration

DEVICES = 40
MESSAGES = 6
PER_MESSAGE = 10
RECEIVED_MS = 1_795_000_000_000


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_group_signal_flushes_and_checkpoints_the_held_batches(pipeline, signum: signal.Signals) -> None:
    fleet = Fleet(DEVICES, interval_ms=15_000, seed=3)
    payloads, sequence_numbers = [], []
    for k in range(MESSAGES):
        batch = fleet.messages(
            RECEIVED_MS - (MESSAGES - k) * PER_MESSAGE * fleet.interval_ms, PER_MESSAGE, received_ms=RECEIVED_MS
        )
        payloads.extend(data for _, data in batch)
        put_records(pipeline.kinesis, pipeline.settings.stream_name, batch, accepted=sequence_numbers)

    # Batches that only a shutdown can flush: no age or size limit is reached in this test.
    consumer = pipeline.start_consumer(WATTSTREAM_MAX_AGE_S="600", WATTSTREAM_MAX_RECORDS="100000")
    wait_until(
        lambda: metric_sum(scrape(consumer.metrics_url), "wattstream_records_total") >= len(sequence_numbers),
        120,
        0.5,
        "every record taken into a batch",
    )
    assert not pipeline.archived_sequence_numbers(), "a batch was flushed before the signal"

    assert consumer.proc is not None
    os.killpg(consumer.proc.pid, signum)
    assert consumer.proc.wait(timeout=90) == 0
    log = consumer.log_path.read_text(errors="replace")
    assert log.count('"event": "shutdown_flushed"') == 2, "each of the 2 shards flushes at shutdown"
    assert '"trigger": "shutdown"' in log

    archived = Counter(pipeline.archived_sequence_numbers())
    assert set(archived) == set(sequence_numbers) and max(archived.values()) == 1
    checkpoints = {shard: lease.get("checkpoint") for shard, lease in pipeline.leases().items()}
    assert checkpoints == pipeline.archived_last_sequence_numbers()
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))
