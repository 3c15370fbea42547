"""PutRecords with partial-failure retry: the rule's Kinesis action.

``put_all`` sends records in calls of at most 500 (the API limit), partition key = thing, and
retries only the entries that failed (``ErrorCode`` set, e.g. throughput exceeded) with
exponential backoff and jitter, until every record is in or ``max_attempts`` is reached. A
partial failure is data (the failed entries), not an exception; only running out of attempts
or a whole call failing raises ``KinesisError``.

Order: Kinesis keeps the order of the records of one partition key within one call. A retried
entry lands after entries of the same thing that succeeded in the first call; the consumer
dedups on (device_id, seq) and orders by seq, so this changes no result.
"""

from __future__ import annotations

import random
import time
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


@dataclass(slots=True)
class KinesisWriter:
    client: KinesisClient
    stream_name: str
    max_attempts: int = 8
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def _chunks(self, records: Sequence[Record]) -> list[list[Record]]:
        chunks: list[list[Record]] = []
        current: list[Record] = []
        size = 0
        for record in records:
            rec_size = len(record.data) + len(record.partition_key.encode())
            if current and (len(current) >= MAX_RECORDS_PER_CALL or size + rec_size > MAX_BYTES_PER_CALL):
                chunks.append(current)
                current, size = [], 0
            current.append(record)
            size += rec_size
        if current:
            chunks.append(current)
        return chunks

    def put_all(self, records: Sequence[Record]) -> int:
        """Put every record; returns the number of PutRecords calls made."""
        calls = 0
        for chunk in self._chunks(records):
            calls += self._put_chunk(chunk)
        return calls

    def _put_chunk(self, chunk: list[Record]) -> int:
        pending = chunk
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.put_records(
                    StreamName=self.stream_name,
                    Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in pending],
                )
            except Exception as exc:  # noqa: BLE001 - botocore errors and connection errors alike
                metrics.PUT_ERRORS.labels(kind="call").inc()
                log.warning("put_records_failed", attempt=attempt, records=len(pending), error=str(exc)[:300])
                failed = pending
            else:
                entries = response.get("Records", [])
                failed = [rec for rec, entry in zip(pending, entries, strict=False) if entry.get("ErrorCode")]
                metrics.RECORDS_PUT.inc(len(pending) - len(failed))
                if failed:
                    metrics.PUT_ERRORS.labels(kind="entry").inc(len(failed))
                    codes = sorted({e.get("ErrorCode") for e in entries if e.get("ErrorCode")})
                    log.warning("put_records_partial", attempt=attempt, failed=len(failed), codes=codes)
            if not failed:
                return attempt
            pending = failed
            if attempt < self.max_attempts:
                ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
                self.sleep(ceiling / 2 + self.rng.uniform(0, ceiling / 2))
        raise KinesisError(f"{len(pending)} records not accepted after {self.max_attempts} attempts")
