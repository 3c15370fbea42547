"""The raw archive and the dead letters in S3, as gzip JSON lines.

Keys are functions of the batch (shard, first and last sequence number, and the arrival time
of its first record), and the gzip header carries no time stamp: a replayed batch writes the
very same bytes to the very same key, so every record lands in the archive exactly once.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from sinks.dynamo import with_retries

RAW_PREFIX = "raw"
DEAD_LETTER_PREFIX = "dead-letter"


def _partition(arrival_ms: int) -> tuple[str, str]:
    dt = datetime.fromtimestamp(arrival_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d"), dt.strftime("%H")


def raw_key(shard_id: str, first_sequence_number: str, last_sequence_number: str, arrival_ms: int) -> str:
    day, hour = _partition(arrival_ms)
    return f"{RAW_PREFIX}/dt={day}/hour={hour}/shard={shard_id}/{first_sequence_number}-{last_sequence_number}.jsonl.gz"


def dead_letter_key(shard_id: str, first_sequence_number: str, last_sequence_number: str, arrival_ms: int) -> str:
    day, hour = _partition(arrival_ms)
    return f"{DEAD_LETTER_PREFIX}/dt={day}/hour={hour}/shard={shard_id}/{first_sequence_number}-{last_sequence_number}.jsonl.gz"


def _line(line: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(line)
    except TypeError:
        # A rejected reading can hold what orjson refuses (a lone surrogate in a string, a
        # NaN the stdlib parser let through): escape it rather than lose the dead letter.
        return json.dumps(line, ensure_ascii=True, default=repr).encode("ascii")


def encode_lines(lines: Iterable[Mapping[str, Any]]) -> bytes:
    body = b"".join(_line(line) + b"\n" for line in lines)
    return gzip.compress(body, compresslevel=6, mtime=0)


def _parse(line: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)  # the escaped lines of _line


def decode_lines(blob: bytes) -> list[dict[str, Any]]:
    return [_parse(line) for line in gzip.decompress(blob).splitlines() if line]


class Archive:
    """Writes gzip JSON-lines objects to one bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def put(self, key: str, lines: Iterable[Mapping[str, Any]]) -> int:
        """Write the object; returns its size in bytes."""
        body = encode_lines(lines)
        with_retries(
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/gzip"),
            what=f"PutObject {key}",
        )
        return len(body)

    def get(self, key: str) -> list[dict[str, Any]]:
        blob = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return decode_lines(blob)

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return out
