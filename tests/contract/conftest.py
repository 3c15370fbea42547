"""Every port's suite runs twice: against the in-memory store and the AWS one on moto server.

The moto server starts once per test run on a free port, and only if a test asks for it; each
test gets its own table or bucket. A ``Subject`` is the store under test plus what the suite
needs to look behind it (the raw object bytes, the stored items), read the backend's own way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from devstack.localaws import moto_server
from devstack.provision import create_bucket, create_table
from sinks.aggregates import AggregateStore
from sinks.archive import Archive
from sinks.live import LiveView
from sinks.manifest import ManifestStore
from sinks.memory import (
    MemoryAggregates,
    MemoryArchive,
    MemoryBucket,
    MemoryBucketRanges,
    MemoryLiveView,
    MemoryManifests,
    MemoryRegistry,
    MemorySnapshots,
    MemoryTable,
)
from sinks.ranges import BucketRanges
from sinks.read import scan_items
from sinks.registry import RegistryStore
from sinks.snapshot import SnapshotStore

BACKENDS = ["memory", "aws"]
REGION = "us-east-1"


@dataclass
class Moto:
    dynamodb: Any
    s3: Any
    url: str
    """The server's endpoint, for what builds its own clients (the command line)."""

    def table(self, keys: list[tuple[str, str]]) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        create_table(self.dynamodb, name, keys)
        return name

    def bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        create_bucket(self.s3, name, REGION)
        return name


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    with moto_server() as url:
        kwargs = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
        yield Moto(boto3.client("dynamodb", **kwargs), boto3.client("s3", **kwargs), url)


@dataclass
class Subject:
    store: Any
    backend: str
    body: Callable[[str], bytes] = lambda key: b""
    """The stored bytes of an object."""
    items: Callable[[], list[dict[str, Any]]] = list
    """Every item of the table, decoded."""
    seed: Callable[..., None] = lambda *what: None
    """Store an item (wire form) or an object (key, bytes) behind the store's back, as another
    program would."""


def _aws(request: pytest.FixtureRequest) -> Moto:
    return request.getfixturevalue("moto")


@pytest.fixture(params=BACKENDS)
def manifests(request: pytest.FixtureRequest) -> Subject:
    if request.param == "memory":
        table = MemoryTable(("shard_id",))
        return Subject(MemoryManifests(table), "memory", seed=lambda wire: table.put(wire))
    aws = _aws(request)
    name = aws.table([("shard_id", "HASH")])
    return Subject(
        ManifestStore(aws.dynamodb, name), "aws", seed=lambda wire: aws.dynamodb.put_item(TableName=name, Item=wire)
    )


def _bucket_subject(
    request: pytest.FixtureRequest, memory: Callable[[MemoryBucket], Any], real: Callable[[Any, str], Any]
) -> Subject:
    if request.param == "memory":
        bucket = MemoryBucket()
        return Subject(memory(bucket), "memory", body=bucket.get, seed=bucket.put)
    aws = _aws(request)
    name = aws.bucket()
    return Subject(
        real(aws.s3, name),
        "aws",
        body=lambda key: aws.s3.get_object(Bucket=name, Key=key)["Body"].read(),
        seed=lambda key, body: aws.s3.put_object(Bucket=name, Key=key, Body=body),
    )


@pytest.fixture(params=BACKENDS)
def archive(request: pytest.FixtureRequest) -> Subject:
    return _bucket_subject(request, MemoryArchive, Archive)


@pytest.fixture(params=BACKENDS)
def snapshots(request: pytest.FixtureRequest) -> Subject:
    return _bucket_subject(request, MemorySnapshots, SnapshotStore)


def _table_subject(
    request: pytest.FixtureRequest, memory: Callable[[MemoryTable], Any], real: Callable[[Any, str], Any]
) -> Iterator[Subject]:
    if request.param == "memory":
        table = MemoryTable()
        store = memory(table)
        yield Subject(store, "memory", items=table.items, seed=lambda wire: table.put(wire))
    else:
        aws = _aws(request)
        name = aws.table([("device_id", "HASH"), ("bucket", "RANGE")])
        store = real(aws.dynamodb, name)
        yield Subject(
            store,
            "aws",
            items=lambda: sorted(scan_items(aws.dynamodb, name), key=lambda i: (i["device_id"], i["bucket"])),
            seed=lambda wire: aws.dynamodb.put_item(TableName=name, Item=wire),
        )
    if hasattr(store, "close"):
        store.close()


@pytest.fixture(params=BACKENDS)
def aggregates(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from _table_subject(request, MemoryAggregates, lambda client, name: AggregateStore(client, name, workers=4))


@pytest.fixture(params=BACKENDS)
def live_view(request: pytest.FixtureRequest) -> Iterator[Subject]:
    groups = getattr(request.module, "LIVE_GROUPS", 100)
    yield from _table_subject(
        request, lambda table: MemoryLiveView(table, groups), lambda client, name: LiveView(client, name, groups)
    )


@pytest.fixture(params=BACKENDS)
def ranges(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from _table_subject(request, MemoryBucketRanges, lambda client, name: BucketRanges(client, name, workers=4))


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from _table_subject(request, MemoryRegistry, RegistryStore)
