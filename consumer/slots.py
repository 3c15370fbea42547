"""Worker slots: KCL worker ids ``slot-0``, ``slot-1``, ... that a replacement task takes over.

ECS gives a task no stable index and a new host name each time, so a task that dies comes back
under a new worker id, and its shards wait for KCL 3's leader to reassign them (two minutes and
more when the dead task was the leader). A worker started under the dead one's id renews that
id's leases at once. With ``WATTSTREAM_WORKER_ID=slot`` the consumer therefore claims a slot
whose claim expired, else the lowest free one, and runs the daemon as ``slot-<k>``.

A slot is one item of the consumer-state table, ``shard_id = worker-slot#<k>`` (no shard id
looks like that), holding the claimant's unique ``owner`` token and ``expires_ms``:

* ``claim`` writes it with a conditional PutItem: the slot is free or its claim expired (an
  expired one is preferred: the leases of the worker that died there wait under its id);
* the heartbeat renews it every ttl/3, conditional on the owner token;
* ``release`` deletes it, conditional on the owner token, once the daemon has exited.

Guarantee: two live workers never hold one slot, as long as the hosts' clocks agree to well
within the ttl. A holder whose renewal finds another owner, or which has not renewed for
two thirds of the ttl, reports the loss (``lost``) with the instant by which its daemon must
be gone: never later than the expiry other claimants see, since each renewal's deadline is
measured from before its request was sent.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from readings.errors import ConditionFailedError, SinkError, WattstreamError
from sinks.dynamo import with_retries

log = structlog.get_logger("wattstream.slots")

SLOT = "slot"
"""The ``WATTSTREAM_WORKER_ID`` value that asks for a slot."""
KEY_PREFIX = "worker-slot#"
MAX_SLOTS = 1000


@dataclass(frozen=True)
class Lost:
    reason: str  # "taken": another worker holds the slot; "expiring": not renewed in time
    stop_by: float  # time.monotonic() by which the daemon must be gone


class WorkerSlot:
    """A claimed slot. ``start`` the heartbeat, watch ``lost()``, ``release`` at the end."""

    def __init__(
        self,
        client: Any,
        table: str,
        index: int,
        owner: str,
        ttl_s: float,
        valid_until: float,
        wall: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self._client = client
        self._table = table
        self.index = index
        self.owner = owner
        self.ttl_s = ttl_s
        self._valid_until = valid_until
        self._wall = wall
        self._monotonic = monotonic
        self._lost: Lost | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def worker_id(self) -> str:
        return f"slot-{self.index}"

    def lost(self) -> Lost | None:
        """The loss, once the slot was taken or two thirds of the ttl passed without a renewal."""
        if self._lost is None and self._monotonic() >= self._valid_until - self.ttl_s / 3:
            self._lost = Lost("expiring", self._valid_until)
        return self._lost

    def renew(self) -> bool:
        """One heartbeat: True when the claim now runs a ttl ahead. A claim found taken is
        lost at once; any other failure is logged and leaves the deadline where it was."""
        if self._lost is not None:
            return False
        started = self._monotonic()
        try:
            with_retries(
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=_key(self.index),
                    UpdateExpression="SET expires_ms = :expires",
                    ConditionExpression="#o = :owner",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={
                        ":owner": {"S": self.owner},
                        ":expires": {"N": str(_ms(self._wall()) + _ms(self.ttl_s))},
                    },
                ),
                what=f"renew {self.worker_id}",
                attempts=2,
            )
        except (WattstreamError, BotoCoreError, ClientError) as exc:
            if _condition_failed(exc):
                self._lost = Lost("taken", started)
            else:
                log.warning("worker_slot_renewal_failed", worker_id=self.worker_id, error=str(exc))
            return False
        self._valid_until = started + self.ttl_s
        return True

    def start(self) -> WorkerSlot:
        """Renew every ttl/3 in a daemon thread until the slot is lost or released; a failed
        renewal is tried again after a tenth of the ttl, so a short outage costs nothing."""

        def beat() -> None:
            pause_s = self.ttl_s / 3
            while not self._stop.wait(pause_s):
                renewed = self.renew()
                lost = self.lost()
                if lost is not None:
                    log.error("worker_slot_lost", worker_id=self.worker_id, reason=lost.reason)
                    return
                pause_s = self.ttl_s / 3 if renewed else self.ttl_s / 10

        self._thread = threading.Thread(target=beat, name=f"heartbeat-{self.worker_id}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and delete the claim if it is still ours (call once the daemon is gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with_retries(
                lambda: self._client.delete_item(
                    TableName=self._table,
                    Key=_key(self.index),
                    ConditionExpression="#o = :owner",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":owner": {"S": self.owner}},
                ),
                what=f"release {self.worker_id}",
            )
        except (WattstreamError, BotoCoreError, ClientError) as exc:
            if _condition_failed(exc):
                log.info("worker_slot_release_skipped", worker_id=self.worker_id, reason="claimed by another worker")
            else:  # the claim expires on its own
                log.warning("worker_slot_release_failed", worker_id=self.worker_id, error=str(exc))
            return
        log.info("worker_slot_released", worker_id=self.worker_id)


def claim(
    client: Any,
    table: str,
    ttl_s: float,
    *,
    host: str | None = None,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> WorkerSlot:
    """A slot claimed for a new owner token: an expired one first, else the lowest free one.

    An expired slot is a worker that died: its leases still name its id, so taking that id
    brings its shards back at once. A released slot (a clean stop) has no such leases waiting.
    """
    host = host or socket.gethostname()
    owner = f"{host}/{uuid.uuid4().hex}"
    for index in _candidates(client, table, _ms(wall())):
        started = monotonic()
        now_ms = _ms(wall())
        item = {
            **_key(index),
            "owner": {"S": owner},
            "host": {"S": host},
            "expires_ms": {"N": str(now_ms + _ms(ttl_s))},
        }
        try:
            with_retries(
                lambda: client.put_item(
                    TableName=table,
                    Item=item,  # noqa: B023 - called within this iteration
                    ConditionExpression="attribute_not_exists(shard_id) OR expires_ms < :now",
                    ExpressionAttributeValues={":now": {"N": str(now_ms)}},  # noqa: B023 - called within this iteration
                ),
                what=f"claim slot-{index}",
            )
        except SinkError as exc:
            if _condition_failed(exc):
                continue
            raise
        slot = WorkerSlot(client, table, index, owner, ttl_s, started + ttl_s, wall, monotonic)
        log.info("worker_slot_claimed", worker_id=slot.worker_id, ttl_s=ttl_s)
        return slot
    raise SinkError(f"all {MAX_SLOTS} worker slots in {table} are claimed")


def _candidates(client: Any, table: str, now_ms: int) -> list[int]:
    """Slot numbers to try, in order: expired claims, then the numbers nobody holds.

    The state table holds one item per shard and per slot, so one scan is small. Each claim is
    conditional anyway: a slot taken meanwhile is skipped.
    """
    expires: dict[int, int] = {}
    response = with_retries(
        lambda: client.scan(
            TableName=table,
            ConsistentRead=True,
            FilterExpression="begins_with(shard_id, :prefix)",
            ExpressionAttributeValues={":prefix": {"S": KEY_PREFIX}},
            ProjectionExpression="shard_id, expires_ms",
        ),
        what="list worker slots",
    )
    pages = [response]
    while "LastEvaluatedKey" in pages[-1]:
        start = pages[-1]["LastEvaluatedKey"]
        pages.append(
            with_retries(
                lambda: client.scan(
                    TableName=table,
                    ConsistentRead=True,
                    FilterExpression="begins_with(shard_id, :prefix)",
                    ExpressionAttributeValues={":prefix": {"S": KEY_PREFIX}},
                    ProjectionExpression="shard_id, expires_ms",
                    ExclusiveStartKey=start,  # noqa: B023 - called within this iteration
                ),
                what="list worker slots",
            )
        )
    for page in pages:
        for item in page.get("Items", []):
            suffix = item["shard_id"]["S"][len(KEY_PREFIX) :]
            if suffix.isdigit() and int(suffix) < MAX_SLOTS:
                expires[int(suffix)] = int(item.get("expires_ms", {}).get("N", "0"))
    expired = sorted(i for i, at in expires.items() if at < now_ms)
    return expired + [i for i in range(MAX_SLOTS) if i not in expires]


def client(region: str, ttl_s: float) -> Any:
    """A DynamoDB client whose calls give up within a heartbeat, so a hung request never
    outlives the claim it renews."""
    import boto3
    from botocore.config import Config

    timeout_s = max(1.0, ttl_s / 3)
    config = Config(
        connect_timeout=timeout_s, read_timeout=timeout_s, retries={"total_max_attempts": 2, "mode": "standard"}
    )
    return boto3.client("dynamodb", region_name=region, config=config)


def _key(index: int) -> dict[str, Any]:
    return {"shard_id": {"S": f"{KEY_PREFIX}{index}"}}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _condition_failed(exc: BaseException) -> bool:
    return isinstance(exc, ConditionFailedError)
