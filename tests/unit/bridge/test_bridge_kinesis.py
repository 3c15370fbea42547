"""PutRecords: chunks of 500, only failed entries retried, a persistent failure raises."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.kinesis import KinesisError, KinesisWriter, Record


@dataclass
class ScriptedKinesis:
    """Fails the entries whose data is in ``fail[n]`` on the n-th call (0-based)."""

    fail: dict[int, set[bytes]] = field(default_factory=dict)
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    stored: list[tuple[bytes, str]] = field(default_factory=list)

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(self.calls)
        self.calls.append(Records)
        out = []
        for rec in Records:
            if rec["Data"] in self.fail.get(n, set()):
                out.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
            else:
                self.stored.append((rec["Data"], rec["PartitionKey"]))
                out.append({"SequenceNumber": str(len(self.stored)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in o for o in out), "Records": out}


def writer(client: ScriptedKinesis, sleeps: list[float]) -> KinesisWriter:
    return KinesisWriter(client, "s", max_attempts=4, sleep=sleeps.append, rng=random.Random(0))


def records(n: int) -> list[Record]:
    return [Record(f"r{i}".encode(), f"box-{i % 7}") for i in range(n)]


def test_splits_into_calls_of_at_most_500() -> None:
    client, sleeps = ScriptedKinesis(), []
    writer(client, sleeps).put_all(records(1201))
    assert [len(c) for c in client.calls] == [500, 500, 201]
    assert sorted(d for d, _ in client.stored) == sorted(r.data for r in records(1201))
    assert all(pk == f"box-{int(d[1:]) % 7}" for d, pk in client.stored)
    assert sleeps == []


def test_partial_failure_retries_only_the_failed_entries() -> None:
    client, sleeps = ScriptedKinesis(fail={0: {b"r3", b"r7"}, 1: {b"r7"}}), []
    writer(client, sleeps).put_all(records(10))
    assert [len(c) for c in client.calls] == [10, 2, 1]
    assert [r["Data"] for r in client.calls[1]] == [b"r3", b"r7"]
    assert sorted(d for d, _ in client.stored) == sorted(r.data for r in records(10))
    assert len(client.stored) == 10  # nothing put twice
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] / 2


def test_gives_up_after_max_attempts() -> None:
    client, sleeps = ScriptedKinesis(fail={n: {b"r0"} for n in range(10)}), []
    with pytest.raises(KinesisError):
        writer(client, sleeps).put_all(records(3))
    assert len(client.calls) == 4
