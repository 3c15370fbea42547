"""``WATTSTREAM_WORKER_ID=slot``: a replacement worker comes back under the dead one's id.

A worker claims slot 0 and holds every lease as ``slot-0``; it is killed with SIGKILL (its claim
is left to expire); a new worker started after the ttl claims the same slot, runs as ``slot-0``
and holds the same leases, and every record put before and after the kill is archived once.
A worker whose slot is taken by someone else stops and exits non-zero.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack.loadgen import Fleet, put_records
from devstack.stack import ConsumerProcess, wait_until
from tests.integration.reference import assert_same_aggregates, expected_aggregates, stored_aggregates

pytestmark = pytest.mark.integration

DEVICES = 30
PER_MESSAGE = 5
RECEIVED_MS = 1_795_000_000_000
SLOT_ENV = {"WATTSTREAM_WORKER_ID": "slot", "WATTSTREAM_WORKER_SLOT_TTL_S": "3"}


class Waves:
    """Messages of one fleet put on the stream in waves; what was sent is kept for the checks."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.fleet = Fleet(DEVICES, interval_ms=15_000, seed=11)
        self.payloads: list[bytes] = []
        self.sequence_numbers: list[str] = []

    def put(self) -> None:
        ts_ms = RECEIVED_MS - 86_400_000 + len(self.payloads) // DEVICES * PER_MESSAGE * self.fleet.interval_ms
        batch = self.fleet.messages(ts_ms, PER_MESSAGE, received_ms=RECEIVED_MS)
        put_records(self.pipeline.kinesis, self.pipeline.settings.stream_name, batch, accepted=self.sequence_numbers)
        self.payloads.extend(data for _, data in batch)


def _slot_item(pipeline: Any, index: int) -> dict[str, Any] | None:
    client = pipeline.settings.client("dynamodb")
    return client.get_item(
        TableName=pipeline.settings.state_table, ConsistentRead=True, Key={"shard_id": {"S": f"worker-slot#{index}"}}
    ).get("Item")


def _worker_id(consumer: ConsumerProcess) -> str:
    """The workerId of the daemon's properties file (written before the consumer serves metrics)."""
    props = Path(consumer.env["WATTSTREAM_WORK_DIR"]) / "consumer.properties"
    line = next(line for line in props.read_text().splitlines() if line.startswith("workerId"))
    return line.split("=", 1)[1].strip()


def test_a_replacement_takes_the_dead_workers_slot_and_its_leases(pipeline) -> None:
    waves = Waves(pipeline)
    waves.put()
    first = pipeline.start_consumer(**SLOT_ENV)
    assert _worker_id(first) == "slot-0"
    wait_until(
        lambda: set(pipeline.owners().values()) == {"slot-0"} and len(pipeline.owners()) == 2,
        180,
        1.0,
        "both leases held by slot-0",
    )
    pipeline.wait_archived(set(waves.sequence_numbers), timeout_s=180)
    held = pipeline.owners()

    waves.put()
    first.kill()
    waves.put()
    # Its claim is never released: the replacement may take the slot once it expired.
    wait_until(
        lambda: int(_slot_item(pipeline, 0)["expires_ms"]["N"]) < time.time() * 1000,
        60,
        0.5,
        "the dead worker's slot claim expired",
    )

    second = pipeline.start_consumer(**SLOT_ENV)
    assert _worker_id(second) == "slot-0"
    waves.put()
    pipeline.wait_archived(set(waves.sequence_numbers), timeout_s=240)
    assert pipeline.owners() == held
    assert second.stop() == 0
    assert _slot_item(pipeline, 0) is None, "a clean exit releases the slot"

    archived = Counter(pipeline.archived_sequence_numbers())
    assert set(archived) == set(waves.sequence_numbers)
    duplicated = {seq: n for seq, n in archived.items() if n > 1}
    assert not duplicated, f"records archived more than once: {list(duplicated.items())[:5]}"
    assert_same_aggregates(stored_aggregates(pipeline.aggregates()), expected_aggregates(waves.payloads))


def test_a_worker_whose_slot_is_taken_stops_and_exits_non_zero(pipeline) -> None:
    consumer = pipeline.start_consumer(**SLOT_ENV)
    assert _worker_id(consumer) == "slot-0"
    client = pipeline.settings.client("dynamodb")
    client.put_item(
        TableName=pipeline.settings.state_table,
        Item={
            "shard_id": {"S": "worker-slot#0"},
            "owner": {"S": "elsewhere/0"},
            "host": {"S": "elsewhere"},
            "expires_ms": {"N": str(int(time.time() * 1000) + 600_000)},
        },
    )
    assert consumer.proc is not None
    assert consumer.proc.wait(timeout=120) != 0
    log = consumer.log_path.read_text(errors="replace")
    assert '"worker_slot_lost"' in log and "worker slot taken" in log
    assert _slot_item(pipeline, 0)["owner"]["S"] == "elsewhere/0", "the new owner's claim is left alone"
