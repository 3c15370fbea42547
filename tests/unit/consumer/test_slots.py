"""Worker slots against a real DynamoDB (moto server on a free port): claims, expiry, loss, release.

Clocks are injected: a claimant whose wall clock is a ttl ahead sees every claim as expired,
and a holder whose monotonic clock is moved on sees its own deadline pass, without sleeping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from consumer import slots
from devstack.localaws import moto_server
from devstack.provision import create_table
from devstack.stack import wait_until

TTL_S = 3.0


class Clock:
    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def __call__(self) -> float:
        return time.time() + self.offset_s


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with moto_server() as url:
        yield boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture
def table(dynamodb: Any) -> str:
    name = f"state-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, name, [("shard_id", "HASH")])
    return name


def test_two_claimants_get_different_slots(dynamodb: Any, table: str) -> None:
    first = slots.claim(dynamodb, table, TTL_S, host="a")
    second = slots.claim(dynamodb, table, TTL_S, host="b")
    assert (first.worker_id, second.worker_id) == ("slot-0", "slot-1")
    assert first.owner != second.owner


def test_a_live_claim_is_not_taken(dynamodb: Any, table: str) -> None:
    slots.claim(dynamodb, table, TTL_S, host="a")
    almost_expired = Clock(TTL_S - 1)
    assert slots.claim(dynamodb, table, TTL_S, host="b", wall=almost_expired).worker_id == "slot-1"


def test_an_expired_claim_is_taken_over(dynamodb: Any, table: str) -> None:
    dead = slots.claim(dynamodb, table, TTL_S, host="a")
    replacement = slots.claim(dynamodb, table, TTL_S, host="b", wall=Clock(TTL_S + 1))
    assert replacement.worker_id == dead.worker_id == "slot-0"
    item = dynamodb.get_item(TableName=table, Key={"shard_id": {"S": "worker-slot#0"}})["Item"]
    assert item["owner"]["S"] == replacement.owner


def test_an_expired_claim_goes_before_a_lower_free_slot(dynamodb: Any, table: str) -> None:
    released = slots.claim(dynamodb, table, TTL_S, host="a")
    slots.claim(dynamodb, table, TTL_S, host="b", wall=Clock(-TTL_S))  # slot-1, expired soon
    released.release()  # slot-0 is free again, but no leases wait under its id
    replacement = slots.claim(dynamodb, table, TTL_S, host="c", wall=Clock(1))
    assert replacement.worker_id == "slot-1"
    assert slots.claim(dynamodb, table, TTL_S, host="d").worker_id == "slot-0"


def test_a_heartbeat_renews_the_claim(dynamodb: Any, table: str) -> None:
    wall = Clock()
    slot = slots.claim(dynamodb, table, TTL_S, host="a", wall=wall)
    wall.offset_s = 10.0
    assert slot.renew()
    assert slots.claim(dynamodb, table, TTL_S, host="b", wall=Clock(TTL_S + 1)).worker_id == "slot-1"
    assert slot.lost() is None


def test_a_heartbeat_that_finds_its_slot_taken_reports_the_loss(dynamodb: Any, table: str) -> None:
    holder = slots.claim(dynamodb, table, TTL_S, host="a").start()
    slots.claim(dynamodb, table, TTL_S, host="b", wall=Clock(TTL_S + 1))
    wait_until(lambda: holder.lost() is not None, 30, 0.1, "the loss reported")
    lost = holder.lost()
    assert lost is not None and lost.reason == "taken"
    assert lost.stop_by <= time.monotonic()  # stop at once: someone else runs under this id
    holder.release()
    item = dynamodb.get_item(TableName=table, Key={"shard_id": {"S": "worker-slot#0"}})["Item"]
    assert item["host"]["S"] == "b", "releasing a lost slot leaves the new owner's claim alone"


def test_a_holder_that_cannot_renew_reports_the_loss_before_expiry(dynamodb: Any, table: str) -> None:
    monotonic = Clock()
    before = monotonic()
    holder = slots.claim(dynamodb, table, TTL_S, host="a", monotonic=monotonic)
    after = monotonic()
    dynamodb.delete_table(TableName=table)  # every renewal fails from now on
    assert not holder.renew()
    assert holder.lost() is None, "one failed renewal is not yet a loss"
    monotonic.offset_s = TTL_S * 2 / 3
    assert not holder.renew()
    lost = holder.lost()
    assert lost is not None and lost.reason == "expiring"
    # The daemon must be gone by the expiry others see, reckoned from before the claim was sent.
    assert before + TTL_S <= lost.stop_by <= after + TTL_S
    holder.release()  # logs and returns: the claim expires by itself


def test_release_frees_the_slot(dynamodb: Any, table: str) -> None:
    first = slots.claim(dynamodb, table, TTL_S, host="a")
    slots.claim(dynamodb, table, TTL_S, host="b")
    first.release()
    assert slots.claim(dynamodb, table, TTL_S, host="c").worker_id == "slot-0"
