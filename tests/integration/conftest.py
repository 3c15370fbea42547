"""Integration fixtures: real emulators, the real KCL daemon, nothing mocked.

The emulators come from ``wattstream local-aws`` on free ports, unless AWS_ENDPOINT_URL is
already set (LocalStack under docker compose, say): then the tests use those endpoints.
Every test gets its own stream, tables, bucket and KCL application, so tests never share
leases or items.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from consumer.settings import Settings
from devstack.localaws import LocalAws
from devstack.net import free_port
from devstack.provision import provision
from devstack.report import metric_sum, scrape
from devstack.stack import ConsumerProcess, wait_until
from sinks.archive import Archive
from sinks.read import fleet_buckets, scan_items

pytestmark = pytest.mark.integration


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """These variables set for the duration, the previous values back afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if os.environ.get("AWS_ENDPOINT_URL"):
        yield {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        return
    aws = LocalAws(port=free_port(), kinesis_port=free_port(), log_dir=tmp_path_factory.mktemp("emulators"))
    aws.start()
    try:
        with environment(aws.env):
            yield aws.env
    finally:
        aws.stop()


@dataclass
class Pipeline:
    """One isolated pipeline: names, settings, and the consumers started for it."""

    env: dict[str, str]
    work: Path
    settings: Settings
    consumers: list[ConsumerProcess] = field(default_factory=list)

    def start_consumer(self, **overrides: str) -> ConsumerProcess:
        index = len(self.consumers)
        env = {
            **self.env,
            **overrides,
            "WATTSTREAM_WORK_DIR": str(self.work / f"c{index}"),
            "WATTSTREAM_METRICS_DIR": str(self.work / f"c{index}" / "metrics"),
        }
        consumer = ConsumerProcess(env, self.work / f"consumer-{index}.log", free_port()).start()
        self.consumers.append(consumer)
        return consumer

    @property
    def kinesis(self) -> Any:
        return self.settings.client("kinesis")

    @property
    def archive(self) -> Archive:
        return Archive(self.settings.client("s3"), self.settings.raw_bucket)

    def aggregates(self) -> list[dict[str, Any]]:
        """Every device's hours and days, closed or open, as the read side sees them."""
        return fleet_buckets(self.settings.client("dynamodb"), self.settings.aggregates_table)

    def items(self) -> list[dict[str, Any]]:
        """The aggregates table's items as stored."""
        return scan_items(self.settings.client("dynamodb"), self.settings.aggregates_table)

    def leases(self) -> dict[str, dict[str, Any]]:
        """The KCL lease table: shard id to its lease (``leaseOwner``, ``checkpoint``, ...)."""
        client = self.settings.client("dynamodb")
        try:
            items = scan_items(client, self.settings.application_name)
        except client.exceptions.ResourceNotFoundException:
            return {}  # no worker has created it yet
        return {item["leaseKey"]: item for item in items}

    def owners(self) -> dict[str, str | None]:
        """Shard id to the worker holding its lease (None: free) for shards not yet ended."""
        return {
            shard: lease.get("leaseOwner")
            for shard, lease in self.leases().items()
            if lease.get("checkpoint") != "SHARD_END"
        }

    def archived_last_sequence_numbers(self) -> dict[str, str]:
        """Per shard, the highest sequence number in the raw archive."""
        last: dict[str, int] = {}
        archive = self.archive
        for key in archive.keys("raw/"):
            for line in archive.get(key):
                shard, seq = line["shard_id"], int(line["sequence_number"])
                last[shard] = max(last.get(shard, 0), seq)
        return {shard: str(seq) for shard, seq in last.items()}

    def archived_sequence_numbers(self) -> list[str]:
        """Every sequence number in the raw archive, once per occurrence."""
        archive = self.archive
        return [line["sequence_number"] for key in archive.keys("raw/") for line in archive.get(key)]

    def dead_letters(self) -> list[dict[str, Any]]:
        archive = self.archive
        return [line for key in archive.keys("dead-letter/") for line in archive.get(key)]

    def wait_archived(self, expected: set[str], timeout_s: float) -> None:
        wait_until(lambda: expected <= set(self.archived_sequence_numbers()), timeout_s, 1.0, "all records archived")

    def wait_stored(self, consumer: ConsumerProcess, readings: int, timeout_s: float) -> None:
        wait_until(
            lambda: metric_sum(scrape(consumer.metrics_url), "wattstream_readings_stored_total") >= readings,
            timeout_s,
            1.0,
            f"{readings} readings stored",
        )

    def stop_all(self) -> None:
        for consumer in self.consumers:
            consumer.stop()


@pytest.fixture
def pipeline(aws_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """A fresh pipeline; ``@pytest.mark.shards(n)`` gives its stream n shards (default 2)."""
    suffix = uuid.uuid4().hex[:8]
    marker = request.node.get_closest_marker("shards")
    env = {
        **aws_env,
        "WATTSTREAM_STREAM_NAME": f"readings-{suffix}",
        "WATTSTREAM_APPLICATION_NAME": f"consumer-{suffix}",
        "WATTSTREAM_AGGREGATES_TABLE": f"aggregates-{suffix}",
        "WATTSTREAM_STATE_TABLE": f"state-{suffix}",
        "WATTSTREAM_RAW_BUCKET": f"raw-{suffix}",
        "WATTSTREAM_SHARD_COUNT": str(marker.args[0] if marker else 2),
        "WATTSTREAM_MAX_AGE_S": "2",
        "WATTSTREAM_MAX_RECORDS": "400",
        "WATTSTREAM_FAILOVER_TIME_MS": "4000",
        "WATTSTREAM_SHUTDOWN_GRACE_MS": "15000",
        "WATTSTREAM_IDLE_TIME_BETWEEN_READS_MS": "250",
        # One worker id per pipeline: a restarted consumer takes its own leases straight back.
        "WATTSTREAM_WORKER_ID": f"worker-{suffix}",
        "WATTSTREAM_KCL_EXTRA_PROPERTIES": '{"leaseAssignmentIntervalMillis": "1000", "shardSyncIntervalMillis": "1000"}',
        "WATTSTREAM_JAVA_OPTIONS": "-Xmx384m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    with environment(env):
        settings = Settings()
        provision(settings)
        pipe = Pipeline(env, tmp_path, settings)
        try:
            yield pipe
        finally:
            for consumer in pipe.consumers:
                consumer.kill()
