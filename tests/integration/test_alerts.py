"""Alerts through the real processor, DynamoDB and SNS on moto server, read back from an SQS queue.

The topic delivers to a queue subscribed to it (raw message delivery), so the queue holds
exactly what subscribers get. box-0001 reports every minute for 45 minutes; box-0002 at minutes
0-2, then at minute 40: with 15-minute silence alerts it fires ``silent`` at minute 17 (the
second batch of 16 records) and clears at minute 40 (the third). Crashes are placed as in
``test_processor_protocol``.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from typing import Any

import orjson
import pytest
from amazon_kclpy.messages import Record

from consumer.processor import ShardProcessor
from consumer.settings import Settings
from devstack.loadgen import rule_record
from readings import to_rfc3339
from sinks.alerts import active_alerts
from sinks.memory import Crash, crash_at
from tests.integration.test_processor_protocol import BASE_SEQ, Checkpointer, feed, start
from tests.integration.test_processor_protocol import Crash as CheckpointCrash

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = 1_795_000_000_000 - 45 * MIN
A, B = "box-0001", "box-0002"
FIRED_AT = T0 + 17 * MIN
EXPECTED = [
    (B, "silent", "fired", f"{B}#silent#{FIRED_AT}#fired"),
    (B, "silent", "cleared", f"{B}#silent#{FIRED_AT}#cleared"),
]


def make_records() -> list[Record]:
    payloads = []
    for k in range(45):
        for device in (A, B):
            if device == B and 3 <= k < 40:
                continue
            arrival_ms = T0 + k * MIN
            reading = {"seq": k + 1, "ts": to_rfc3339(arrival_ms - 2000), "energy_wh": 10.0 * k}
            payloads.append((device, rule_record(device, [reading], arrival_ms), arrival_ms))
    return [
        Record(
            {
                "data": base64.b64encode(data).decode(),
                "partitionKey": device,
                "sequenceNumber": str(BASE_SEQ + i * 1_000_000),
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": arrival_ms,
            }
        )
        for i, (device, data, arrival_ms) in enumerate(payloads)
    ]


@pytest.fixture
def topic(pipeline) -> tuple[Settings, str]:
    """A topic of the test's own and a queue subscribed to it; the settings that publish there."""
    sns, sqs = pipeline.settings.client("sns"), pipeline.settings.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    topic_arn = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"alerts-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    settings = Settings(max_records=16, max_age_s=3600, alert_silence_min=15, alerts_topic_arn=topic_arn)
    return settings, queue_url


def received(pipeline, queue_url: str) -> list[dict[str, Any]]:
    sqs = pipeline.settings.client("sqs")
    out = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return out
        for m in batch:
            out.append(orjson.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def brief(messages: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(m["device_id"], m["kind"], m["event"], m["event_id"]) for m in messages]


def finish(settings: Settings, records: list[Record], checkpoint: str) -> ShardProcessor:
    proc = start(settings, checkpoint=checkpoint)
    cp = Checkpointer()
    feed(proc, [r for r in records if int(r.sequence_number) > int(checkpoint)], cp)
    proc.shutdown_requested(type("S", (), {"checkpointer": cp})())
    return proc


def test_a_silence_is_published_fired_then_cleared_and_readable_while_active(pipeline, topic) -> None:
    settings, queue_url = topic
    records = make_records()
    proc = start(settings)
    cp = Checkpointer()
    feed(proc, records[:32], cp)
    client = settings.client("dynamodb")
    active = active_alerts(client, settings.aggregates_table, consistent=True)
    assert [(d, [(a.kind, a.fired_ms) for a in alerts]) for d, alerts in active.items()] == [
        (B, [("silent", FIRED_AT)])
    ]
    assert active_alerts(client, settings.aggregates_table, [A, B], consistent=True) == active
    assert active_alerts(client, settings.aggregates_table, [A], consistent=True) == {}
    feed(proc, records[32:], cp)
    proc.shutdown_requested(type("S", (), {"checkpointer": cp})())
    messages = received(pipeline, queue_url)
    assert brief(messages) == EXPECTED
    assert messages[0]["fired_at"] == to_rfc3339(FIRED_AT) and messages[1]["cleared_at"] == to_rfc3339(T0 + 40 * MIN)
    assert active_alerts(client, settings.aggregates_table, consistent=True) == {}


def test_a_crash_between_the_firing_and_the_checkpoint_publishes_once(pipeline, topic) -> None:
    settings, queue_url = topic
    records = make_records()
    first = start(settings)
    done = Checkpointer()
    feed(first, records[:16], done)
    with pytest.raises(CheckpointCrash):
        feed(first, records[16:32], Checkpointer(fail_with="crash"))  # fired, published, never checkpointed
    assert brief(received(pipeline, queue_url)) == EXPECTED[:1]
    finish(settings, records, done.checkpoints[-1])
    assert brief(received(pipeline, queue_url)) == EXPECTED[1:]


def test_a_crash_after_the_outbox_write_and_before_the_publish_publishes_once_on_the_replay(pipeline, topic) -> None:
    settings, queue_url = topic
    records = make_records()
    first = start(settings)
    done = Checkpointer()
    feed(first, records[:16], done)
    first._stores = dataclasses.replace(first.stores, outbox=crash_at(first.stores.outbox, "record", after=True))
    with pytest.raises(Crash):
        feed(first, records[16:32], Checkpointer())
    assert received(pipeline, queue_url) == []
    finish(settings, records, done.checkpoints[-1])
    assert brief(received(pipeline, queue_url)) == EXPECTED
