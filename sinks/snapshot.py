"""Shard snapshots in S3: every device's state after a batch, one object per batch.

The processor of a shard keeps its devices' state in memory and makes it durable once per
flush, in one PUT, instead of one write per device. The key is a function of the shard and the
batch (``state/shard=<shard>/<last-sequence-number>.json.gz``) and the bytes are a function of the state
(sorted keys, gzip without a time stamp), so a replayed batch writes the very same object. The
batch manifest names the snapshot before and after its batch: a replay starts from the one
before, a new owner from the one after the last checkpointed batch.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from typing import Any

import orjson
from botocore.exceptions import ClientError

from readings.errors import SinkError
from sinks.dynamo import with_retries

STATE_PREFIX = "state"
FORMAT = 1


def snapshot_key(shard_id: str, last_sequence_number: str) -> str:
    return f"{STATE_PREFIX}/shard={shard_id}/{last_sequence_number}.json.gz"


def encode_snapshot(shard_id: str, last_sequence_number: str, devices: Mapping[str, Any]) -> bytes:
    doc = {"format": FORMAT, "shard_id": shard_id, "last_sequence_number": last_sequence_number, "devices": devices}
    return gzip.compress(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), compresslevel=1, mtime=0)


def decode_snapshot(blob: bytes) -> dict[str, Any]:
    doc = orjson.loads(gzip.decompress(blob))
    if doc.get("format") != FORMAT:
        raise SinkError(f"snapshot format {doc.get('format')!r} is not {FORMAT}")
    return doc["devices"]


class SnapshotStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def put(self, key: str, shard_id: str, last_sequence_number: str, devices: Mapping[str, Any]) -> int:
        body = encode_snapshot(shard_id, last_sequence_number, devices)
        with_retries(
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/gzip"),
            what=f"PutObject {key}",
        )
        return len(body)

    def get(self, key: str) -> dict[str, Any] | None:
        """The devices of a snapshot; None when the object does not exist."""
        try:
            response = with_retries(
                lambda: self._client.get_object(Bucket=self.bucket, Key=key), what=f"GetObject {key}"
            )
        except SinkError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return decode_snapshot(response["Body"].read())

    def delete(self, key: str) -> None:
        with_retries(lambda: self._client.delete_object(Bucket=self.bucket, Key=key), what=f"DeleteObject {key}")
