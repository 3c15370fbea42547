"""The whole consumer against the emulators: 2 shards, 100 devices, 50,000 readings."""

from __future__ import annotations

from collections import Counter

import pytest

from devstack.loadgen import Fleet, put_records
from devstack.report import metric_sum, scrape
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

pytestmark = pytest.mark.integration

DEVICES = 100
READINGS_PER_DEVICE = 500
PER_MESSAGE = 25


def test_fifty_thousand_readings_are_stored_once(pipeline) -> None:
    fleet = Fleet(DEVICES, interval_ms=15_000, seed=11)
    now_ms = 1_795_000_000_000  # a fixed instant keeps the buckets stable across runs
    payloads, sequence_numbers = [], []
    rounds = READINGS_PER_DEVICE // PER_MESSAGE
    for k in range(rounds):
        ts_ms = now_ms - (rounds - 1 - k) * PER_MESSAGE * fleet.interval_ms
        batch = fleet.messages(ts_ms, PER_MESSAGE, received_ms=now_ms)
        payloads.extend(data for _, data in batch)
        put_records(pipeline.kinesis, pipeline.settings.stream_name, batch, accepted=sequence_numbers)
    assert len(sequence_numbers) == DEVICES * rounds

    consumer = pipeline.start_consumer()
    pipeline.wait_stored(consumer, DEVICES * READINGS_PER_DEVICE, timeout_s=300)
    samples = scrape(consumer.metrics_url)
    assert consumer.stop() == 0

    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(payloads))
    archived = Counter(pipeline.archived_sequence_numbers())
    assert set(archived) == set(sequence_numbers)
    assert max(archived.values()) == 1
    # Batching is the point: far fewer item writes than readings.
    writes = metric_sum(samples, "wattstream_dynamodb_writes_total")
    assert 0 < writes < DEVICES * READINGS_PER_DEVICE / 10
    aggregate_writes = samples[f"wattstream_dynamodb_writes_total{{table={pipeline.settings.aggregates_table}}}"]
    assert metric_sum(samples, "wattstream_dynamodb_consumed_wcu_total") > 0 < aggregate_writes
    assert metric_sum(samples, "wattstream_rejected_total") == 0
