"""PutRecords: calls within the API's limits, only refused entries retried, each thing's
records on the stream in the order given whatever fails, a persistent failure raises."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.kinesis import MAX_BYTES_PER_CALL, KinesisError, KinesisWriter, Record


@dataclass
class ScriptedKinesis:
    """A stream that refuses the entries ``refuse(call, data)`` names, and stores the rest."""

    refuse: Any = lambda call, data: False
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    stored: list[tuple[bytes, str]] = field(default_factory=list)

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(self.calls)
        self.calls.append(Records)
        out = []
        for rec in Records:
            if self.refuse(n, rec["Data"]):
                out.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
            else:
                self.stored.append((rec["Data"], rec["PartitionKey"]))
                out.append({"SequenceNumber": str(1000 + len(self.stored)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in o for o in out), "Records": out}


def refusing(script: dict[int, set[bytes]]) -> Any:
    return lambda call, data: data in script.get(call, set())


def writer(client: ScriptedKinesis, sleeps: list[float], attempts: int = 4) -> KinesisWriter:
    return KinesisWriter(client, "s", max_attempts=attempts, sleep=sleeps.append, rng=random.Random(0))


def records(n: int, things: int = 7) -> list[Record]:
    return [Record(f"r{i}".encode(), f"box-{i % things}") for i in range(n)]


def per_thing(pairs: list[tuple[bytes, str]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for data, key in pairs:
        out.setdefault(key, []).append(data)
    return out


def test_many_things_fill_calls_of_at_most_500() -> None:
    client, sleeps = ScriptedKinesis(), []
    put = writer(client, sleeps).put_all(records(1201, things=1201))
    assert [len(c) for c in client.calls] == [500, 500, 201] and put.calls == 3
    assert sorted(d for d, _ in client.stored) == sorted(r.data for r in records(1201, things=1201))
    assert sleeps == []


def test_a_call_stays_under_5_mib() -> None:
    client, sleeps = ScriptedKinesis(), []
    big = [Record(bytes([i]) * (1024 * 1024), f"box-{i}") for i in range(12)]
    writer(client, sleeps).put_all(big)
    sizes = [sum(len(r["Data"]) + len(r["PartitionKey"]) for r in call) for call in client.calls]
    assert max(sizes) <= MAX_BYTES_PER_CALL and sum(len(c) for c in client.calls) == 12


def test_a_call_carries_one_record_per_thing() -> None:
    client, sleeps = ScriptedKinesis(), []
    writer(client, sleeps).put_all(records(10, things=3))
    assert [len(c) for c in client.calls] == [3, 3, 3, 1]
    for call in client.calls:
        assert len({r["PartitionKey"] for r in call}) == len(call)


def test_partial_failure_retries_only_the_refused_entry_and_keeps_its_thing_waiting() -> None:
    client, sleeps = ScriptedKinesis(refusing({0: {b"r3"}, 1: {b"r3"}})), []
    put = writer(client, sleeps).put_all(records(10))
    # r3 (box-3) is refused twice; box-3 has nothing after it, the other things go on.
    assert [[r["Data"] for r in call] for call in client.calls] == [
        [b"r0", b"r1", b"r2", b"r3", b"r4", b"r5", b"r6"],
        [b"r7", b"r8", b"r9", b"r3"],
        [b"r3"],
    ]
    assert len(client.stored) == 10  # nothing put twice
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] / 2
    assert put.calls == 3


def test_a_refused_record_holds_back_the_later_records_of_its_thing() -> None:
    client, sleeps = ScriptedKinesis(refusing({0: {b"r0"}})), []
    writer(client, sleeps).put_all(records(4, things=2))  # box-0: r0, r2; box-1: r1, r3
    assert per_thing(client.stored) == {"box-0": [b"r0", b"r2"], "box-1": [b"r1", b"r3"]}


def test_sequence_numbers_come_back_in_the_order_given() -> None:
    client, sleeps = ScriptedKinesis(refusing({0: {b"r1"}})), []
    put = writer(client, sleeps).put_all(records(5))
    stored_at = {data: str(1001 + n) for n, (data, _) in enumerate(client.stored)}
    assert put.sequence_numbers == [stored_at[r.data] for r in records(5)]


def test_a_whole_call_that_fails_is_retried() -> None:
    class Flaky(ScriptedKinesis):
        def put_records(self, **kwargs: Any) -> dict[str, Any]:
            if not self.calls:
                self.calls.append(kwargs["Records"])
                raise ConnectionError("reset by peer")
            return super().put_records(**kwargs)

    client, sleeps = Flaky(), []
    writer(client, sleeps).put_all(records(3))
    assert sorted(d for d, _ in client.stored) == [b"r0", b"r1", b"r2"] and len(sleeps) == 1


def test_gives_up_after_max_attempts() -> None:
    client, sleeps = ScriptedKinesis(refusing({n: {b"r0"} for n in range(10)})), []
    with pytest.raises(KinesisError):
        writer(client, sleeps).put_all(records(3))
    assert len(client.calls) == 4


@settings(max_examples=200, deadline=None)
@given(
    things=st.integers(1, 6),
    count=st.integers(0, 40),
    refused=st.sets(st.tuples(st.integers(0, 60), st.integers(0, 39)), max_size=60),
)
def test_any_refusals_leave_every_thing_in_order_and_nothing_twice(
    things: int, count: int, refused: set[tuple[int, int]]
) -> None:
    given_records = records(count, things)
    client = ScriptedKinesis(lambda call, data: (call, int(data[1:])) in refused)
    writer(client, [], attempts=100).put_all(given_records)
    assert per_thing(client.stored) == per_thing([(r.data, r.partition_key) for r in given_records])
