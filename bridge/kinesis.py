"""PutRecords with partial-failure retry, keeping each partition key's order: the rule's Kinesis action.

``put_all`` sends records in calls of at most 500 records and 5 MiB (the API limits),
partition key = thing, and retries only the entries that failed (``ErrorCode`` set, e.g.
throughput exceeded) with exponential backoff and jitter, until every record is in or one
record has failed ``max_attempts`` times. A partial failure is data (the failed entries), not
an exception; only running out of attempts raises ``KinesisError``.

Order: within one call, Kinesis stores the entries of a partition key in the order sent, but
an entry that fails does not stop the ones after it. So a call carries at most one record per
partition key: the next record of a thing is sent only once the one before it is on the
stream, and a retried record never lands after a later one of its thing. Records of different
things are independent and fill the calls; only a thing with several records waiting (a box
draining its spool) needs one call per record.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from bridge import metrics
from readings.errors import WattstreamError

log = structlog.get_logger("bridge.kinesis")

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024


class KinesisError(WattstreamError):
    """Records could not be put on the stream after all attempts."""


class KinesisClient(Protocol):
    """The part of boto3's Kinesis client the bridge uses."""

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]: ...  # noqa: N803 - boto3's names


@dataclass(frozen=True, slots=True)
class Record:
    data: bytes
    partition_key: str


@dataclass(frozen=True, slots=True)
class Put:
    calls: int
    """PutRecords calls made, retries included."""
    sequence_numbers: list[str]
    """The stream's sequence number of each record, in the order the records were given."""


@dataclass(slots=True)
class KinesisWriter:
    client: KinesisClient
    stream_name: str
    max_attempts: int = 8
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def put_all(self, records: Sequence[Record]) -> Put:
        """Put every record, each thing's in the order given; what the stream assigned them."""
        sequence_numbers: list[str] = [""] * len(records)
        waiting: dict[str, deque[int]] = {}
        for index, record in enumerate(records):
            waiting.setdefault(record.partition_key, deque()).append(index)
        failures = [0] * len(records)
        calls = streak = 0
        while waiting:
            heads = [queue[0] for queue in waiting.values()]
            failed: list[int] = []
            for chunk in self._chunks(records, heads):
                calls += 1
                failed += self._put_chunk(records, chunk, sequence_numbers)
            for index in set(heads) - set(failed):
                queue = waiting[records[index].partition_key]
                queue.popleft()
                if not queue:
                    del waiting[records[index].partition_key]
            if not failed:
                streak = 0
                continue
            for index in failed:
                failures[index] += 1
            if max(failures[index] for index in failed) >= self.max_attempts:
                stuck = sum(1 for index in failed if failures[index] >= self.max_attempts)
                raise KinesisError(f"{stuck} records not accepted after {self.max_attempts} attempts")
            streak += 1
            ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (streak - 1))
            self.sleep(ceiling / 2 + self.rng.uniform(0, ceiling / 2))
        return Put(calls, sequence_numbers)

    @staticmethod
    def _chunks(records: Sequence[Record], indices: list[int]) -> list[list[int]]:
        chunks: list[list[int]] = []
        current: list[int] = []
        size = 0
        for index in indices:
            record = records[index]
            rec_size = len(record.data) + len(record.partition_key.encode())
            if current and (len(current) >= MAX_RECORDS_PER_CALL or size + rec_size > MAX_BYTES_PER_CALL):
                chunks.append(current)
                current, size = [], 0
            current.append(index)
            size += rec_size
        if current:
            chunks.append(current)
        return chunks

    def _put_chunk(self, records: Sequence[Record], chunk: list[int], sequence_numbers: list[str]) -> list[int]:
        """One PutRecords call; the indices it failed to put."""
        try:
            response = self.client.put_records(
                StreamName=self.stream_name,
                Records=[{"Data": records[i].data, "PartitionKey": records[i].partition_key} for i in chunk],
            )
        except Exception as exc:  # noqa: BLE001 - botocore errors and connection errors alike
            metrics.PUT_ERRORS.labels(kind="call").inc()
            log.warning("put_records_failed", records=len(chunk), error=str(exc)[:300])
            return chunk
        entries = response.get("Records", [])
        failed = []
        for index, entry in zip(chunk, entries, strict=False):
            if entry.get("ErrorCode") or "SequenceNumber" not in entry:
                failed.append(index)
            else:
                sequence_numbers[index] = entry["SequenceNumber"]
        failed += chunk[len(entries) :]
        metrics.RECORDS_PUT.inc(len(chunk) - len(failed))
        if failed:
            metrics.PUT_ERRORS.labels(kind="entry").inc(len(failed))
            codes = sorted({e.get("ErrorCode") for e in entries if e.get("ErrorCode")})
            log.warning("put_records_partial", failed=len(failed), codes=codes)
        return failed
