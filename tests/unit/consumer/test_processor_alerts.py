"""Alerts through ``ShardProcessor`` against the in-memory stores: once, across crashes and replays.

The stream: box-0001 reports every minute for 45 minutes; box-0002 at minutes 0-2, then not
until minute 40. With silence alerts after 15 minutes, box-0002 fires ``silent`` at minute 17
(noticed by the second batch of 16 records) and clears at minute 40 (the third batch). Crashes
are placed as in ``test_processor_paths`` (``sinks.memory.crash_at``); a fresh processor then
starts from the last checkpoint, as the daemon's restart would.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from consumer.processor import ShardProcessor
from consumer.settings import Settings
from devstack.loadgen import rule_record
from readings import to_rfc3339
from sinks.alerts import ALERTS_PARTITION, PENDING
from sinks.memory import Crash, MemoryBackend, MemoryRegistry, crash_at, on_call
from sinks.memory_alerts import MemoryOutbox, MemoryTopic
from sinks.registry import DeviceInfo
from tests.unit.consumer.test_processor_paths import (
    BASE_SEQ,
    Checkpointer,
    after,
    contents,
    feed,
    message,
    shutdown,
    start,
)
from tests.unit.consumer.test_processor_paths import stores_of as paths_stores

MIN = 60_000
T0 = 1_795_000_000_000 - 45 * MIN
A, B = "box-0001", "box-0002"
SETTINGS = Settings(max_records=16, max_age_s=3600, live_groups=4, alert_silence_min=15)
FIRED_AT, CLEARED_AT = T0 + 17 * MIN, T0 + 40 * MIN


def stream(minutes: int = 45, quiet: range = range(3, 40), power_w: float | None = None) -> list[dict[str, Any]]:
    """One record a minute per device (but box-0002 in ``quiet``), arriving 2 s after its reading."""
    out = []
    for k in range(minutes):
        for device in (A, B):
            if device == B and k in quiet:
                continue
            arrival_ms = T0 + k * MIN
            reading = {"seq": k + 1, "ts": to_rfc3339(arrival_ms - 2000), "energy_wh": 10.0 * k, "power_w": power_w}
            out.append((device, rule_record(device, [reading], arrival_ms), arrival_ms))
    return [
        {
            "action": "record",
            "data": base64.b64encode(data).decode(),
            "partitionKey": device,
            "sequenceNumber": str(BASE_SEQ + i * 1_000_000),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": arrival_ms,
        }
        for i, (device, data, arrival_ms) in enumerate(out)
    ]


STREAM = stream()


def stores_of(backend: MemoryBackend, topic: MemoryTopic | None, **replaced: Any) -> Any:
    outbox = replaced.pop("outbox", MemoryOutbox(backend.aggregates_table))
    return paths_stores(backend, outbox=outbox, notifier=topic, **replaced)


def silent_messages(topic: MemoryTopic) -> list[tuple[str, str, str, str]]:
    return [(m["device_id"], m["kind"], m["event"], m["event_id"]) for m in topic.messages()]


EXPECTED = [
    (B, "silent", "fired", f"{B}#silent#{FIRED_AT}#fired"),
    (B, "silent", "cleared", f"{B}#silent#{FIRED_AT}#cleared"),
]


def run(backend: MemoryBackend, topic: MemoryTopic, settings: Settings = SETTINGS, **kwargs: Any) -> ShardProcessor:
    proc = start(stores_of(backend, topic), settings=settings, **kwargs)
    checkpointer = Checkpointer()
    feed(proc, STREAM, checkpointer)
    shutdown(proc, checkpointer)
    return proc


def crash_free() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    run(backend, topic)
    return contents(backend), topic.messages()


def test_a_silence_fires_once_and_clears_once_with_its_message() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    run(backend, topic)
    assert silent_messages(topic) == EXPECTED
    fired, cleared = topic.messages()
    assert fired == {
        "v": 1,
        "event_id": f"{B}#silent#{FIRED_AT}#fired",
        "device_id": B,
        "kind": "silent",
        "event": "fired",
        "fired_at": to_rfc3339(FIRED_AT),
        "cleared_at": None,
        "values": {"limit_min": 15.0, "last_heard": to_rfc3339(T0 + 2 * MIN)},
    }
    assert cleared["cleared_at"] == to_rfc3339(CLEARED_AT) and cleared["values"] == {"minutes_silent": 38.0}
    item = backend.aggregates_table.items()
    alert = next(i for i in item if i["device_id"] == ALERTS_PARTITION)
    assert alert["active"] is False and PENDING not in alert and alert["cleared_ms"] == CLEARED_AT


def test_the_active_alert_is_readable_between_its_firing_and_its_clearing() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    outbox = MemoryOutbox(backend.aggregates_table)
    proc = start(stores_of(backend, topic, outbox=outbox), settings=SETTINGS)
    feed(proc, STREAM[:32], Checkpointer())
    active = outbox.active()
    assert list(active) == [B] and [(a.kind, a.fired_ms) for a in active[B]] == [("silent", FIRED_AT)]
    assert outbox.active([A]) == {}
    feed(proc, STREAM[32:], Checkpointer())
    assert outbox.active() == {}


def test_a_batch_without_alerts_makes_no_outbox_request() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    outbox = crash_at(MemoryOutbox(backend.aggregates_table), "record")
    proc = start(stores_of(backend, topic, outbox=outbox), settings=SETTINGS)
    checkpointer = Checkpointer()
    feed(proc, stream(quiet=range(0)), checkpointer)
    shutdown(proc, checkpointer)
    assert len(checkpointer.checkpoints) == 6 and topic.requests == []


# -- crashes -------------------------------------------------------------------------------------


def crash_and_replay(backend: MemoryBackend, topic: MemoryTopic, first: Checkpointer, **replaced: Any) -> None:
    proc = start(stores_of(backend, topic, **replaced), settings=SETTINGS)
    with pytest.raises(Crash):
        feed(proc, STREAM, first)
    checkpoint = first.checkpoints[-1]
    restarted = start(stores_of(backend, topic), checkpoint, owner="worker-b", settings=SETTINGS)
    second = Checkpointer()
    feed(restarted, after(STREAM, checkpoint), second)
    shutdown(restarted, second)


def test_a_crash_after_the_outbox_write_and_before_the_publish_publishes_once_on_the_replay() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    outbox = crash_at(MemoryOutbox(backend.aggregates_table), "record", after=True)
    crash_and_replay(backend, topic, Checkpointer(), outbox=outbox)
    assert topic.requests and silent_messages(topic) == EXPECTED and len(topic.requests) == 2
    assert (contents(backend), topic.messages()) == crash_free()


def test_a_crash_after_the_mark_and_before_the_checkpoint_publishes_nothing_again() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    # The second batch (the one that fires) dies at its checkpoint: everything was written.
    crash_and_replay(backend, topic, Checkpointer(fail_at=2))
    assert len(topic.requests) == 2 and silent_messages(topic) == EXPECTED
    assert (contents(backend), topic.messages()) == crash_free()


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_crash_between_the_publish_and_its_mark_publishes_the_same_message_again(fifo: bool) -> None:
    """The one window left: the replay finds the event still pending and publishes it again,
    with the same body and event id. A FIFO topic drops the copy by its deduplication id."""
    backend = MemoryBackend(live_groups=4)
    topic = MemoryTopic("arn:aws:sns:us-east-1:000000000000:alerts.fifo") if fifo else MemoryTopic()
    outbox = crash_at(MemoryOutbox(backend.aggregates_table), "mark_sent")
    crash_and_replay(backend, topic, Checkpointer(), outbox=outbox)
    fired = [r for r in topic.requests if '"event":"fired"' in r["Message"]]
    assert len(fired) == 2 and fired[0] == fired[1]
    if fifo:
        assert fired[0]["MessageDeduplicationId"] and fired[0]["MessageGroupId"] == B
        assert silent_messages(topic) == EXPECTED
    else:
        assert "MessageDeduplicationId" not in fired[0]
        assert silent_messages(topic) == [EXPECTED[0], *EXPECTED]
    assert contents(backend) == crash_free()[0]


def test_a_topic_that_cannot_be_reached_stops_the_flush_and_the_replay_publishes() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic(fail=True)
    proc = start(stores_of(backend, topic), settings=SETTINGS)
    first = Checkpointer()
    with pytest.raises(SystemExit):
        feed(proc, STREAM, first)
    assert len(first.checkpoints) == 1
    topic.fail = False
    restarted = start(stores_of(backend, topic), first.checkpoints[-1], owner="worker-b", settings=SETTINGS)
    second = Checkpointer()
    feed(restarted, after(STREAM, first.checkpoints[-1]), second)
    shutdown(restarted, second)
    assert silent_messages(topic) == EXPECTED and len(topic.requests) == 2


def test_without_a_topic_the_events_are_recorded_and_stay_pending() -> None:
    backend = MemoryBackend(live_groups=4)
    outbox = MemoryOutbox(backend.aggregates_table)
    proc = start(paths_stores(backend, outbox=outbox), settings=SETTINGS)
    feed(proc, STREAM[:32], Checkpointer())
    (item,) = outbox.items()
    assert item["active"] is True and item[PENDING] == {f"{B}#silent#{FIRED_AT}#fired"}


def test_a_zombie_that_stalled_before_its_alerts_changes_nothing_after_the_new_owner_moved_on() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    zombie_cp = Checkpointer()
    owner_cp = Checkpointer()

    def takeover() -> None:
        owner = start(stores_of(backend, topic), zombie_cp.checkpoints[-1], owner="worker-b", settings=SETTINGS)
        feed(owner, after(STREAM, zombie_cp.checkpoints[-1]), owner_cp)
        shutdown(owner, owner_cp)

    outbox = on_call(MemoryOutbox(backend.aggregates_table), "record", takeover)
    zombie = start(stores_of(backend, topic, outbox=outbox), settings=SETTINGS)
    feed(zombie, STREAM, zombie_cp)
    assert zombie.phase == "fenced"
    assert silent_messages(topic) == EXPECTED and len(topic.requests) == 2
    assert (contents(backend), topic.messages()) == crash_free()


# -- the registry's thresholds -------------------------------------------------------------------


def test_a_device_power_limit_from_the_registry_fires_power_high() -> None:
    backend, topic = MemoryBackend(live_groups=4), MemoryTopic()
    registry = MemoryRegistry(backend.aggregates_table)
    registry.put(DeviceInfo(A, power_limit_w=500.0))
    proc = ShardProcessor(
        SETTINGS, stores=stores_of(backend, topic), owner="worker-a", registry=registry, clock_ms=lambda: T0
    )
    message("initialize", shardId="shardId-000000000007", sequenceNumber="TRIM_HORIZON", subSequenceNumber=0).dispatch(
        None, proc
    )
    checkpointer = Checkpointer()
    feed(proc, stream(quiet=range(0), power_w=800.0), checkpointer)
    shutdown(proc, checkpointer)
    power = [m for m in topic.messages() if m["kind"] == "power_high"]
    # The first batch (minutes 0-7) stores the threshold; minute 8 starts the five minutes.
    assert [(m["device_id"], m["event"], m["fired_at"]) for m in power] == [
        (A, "fired", to_rfc3339(T0 + 13 * MIN - 2000))
    ]
    assert power[0]["values"]["threshold_w"] == 500.0
