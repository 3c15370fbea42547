"""``wattstream init``: the stream, the two tables, the bucket and the alert topic, created idempotently.

In AWS, Terraform (deploy/ecs) owns these; this is for the emulators and LocalStack.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.settings import Settings

log = structlog.get_logger("wattstream.init")


def _exists(exc: ClientError, *codes: str) -> bool:
    return exc.response.get("Error", {}).get("Code") in codes


def create_stream(kinesis: Any, name: str, shards: int, timeout_s: float = 60) -> None:
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        log.info("stream_created", stream=name, shards=shards)
    except ClientError as exc:
        if not _exists(exc, "ResourceInUseException"):
            raise
    deadline = time.monotonic() + timeout_s
    while kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {name} not ACTIVE after {timeout_s} s")
        time.sleep(0.2)


def create_table(dynamodb: Any, name: str, keys: list[tuple[str, str]]) -> None:
    try:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
        )
        log.info("table_created", table=name)
    except ClientError as exc:
        if not _exists(exc, "ResourceInUseException"):
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def create_bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
        log.info("bucket_created", bucket=name)
    except ClientError as exc:
        if not _exists(exc, "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


LOCAL_ALERTS_TOPIC = "wattstream-alerts"


def create_topic(sns: Any, arn: str) -> str:
    """The alert topic: the one ``arn`` names (created if missing), or ``wattstream-alerts``; its ARN."""
    name = arn.rsplit(":", 1)[-1] if arn else LOCAL_ALERTS_TOPIC
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if name.endswith(".fifo") else {}
    topic_arn = str(sns.create_topic(Name=name, Attributes=attributes)["TopicArn"])  # idempotent
    log.info("topic_ready", topic_arn=topic_arn)
    return topic_arn


def provision(settings: Settings) -> str:
    """Everything the consumer writes to; the alert topic's ARN (for WATTSTREAM_ALERTS_TOPIC_ARN)."""
    create_stream(settings.client("kinesis"), settings.stream_name, settings.shard_count)
    dynamodb = settings.client("dynamodb")
    create_table(dynamodb, settings.aggregates_table, [("device_id", "HASH"), ("bucket", "RANGE")])
    create_table(dynamodb, settings.state_table, [("shard_id", "HASH")])
    create_bucket(settings.client("s3"), settings.raw_bucket, settings.region)
    return create_topic(settings.client("sns"), settings.alerts_topic_arn)
