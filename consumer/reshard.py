"""``wattstream reshard``: change a stream's shard count while the consumers run.

Kinesis reshards with ``UpdateShardCount`` (uniform scaling): every open shard is closed and
children cover the same hash keys. One call may at most double or halve the open shards, so a
larger change is made in steps, each waited for until the stream is ACTIVE again. The consumers
need nothing: a closed shard's processor drains it to its end, stores its last batch and
checkpoints ``SHARD_END``; KCL then starts the children, which take their devices' state from
their parents' final snapshots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click
import structlog

from readings.errors import ConfigError

log = structlog.get_logger("wattstream.reshard")

MAX_SHARDS = 10_000
"""Kinesis's default per-stream limit for UpdateShardCount targets."""


@dataclass(frozen=True, slots=True)
class Step:
    before: int
    after: int
    seconds: float


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """The stream's open shards (those without an ending sequence number)."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        response = kinesis.list_shards(**kwargs)
        shards.extend(response.get("Shards", []))
        token = response.get("NextToken")
        if not token:
            break
        kwargs = {"NextToken": token}
    return [s for s in shards if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]


def plan(current: int, target: int) -> list[int]:
    """The shard counts to pass through: each at most double or half the one before."""
    if not 1 <= target <= MAX_SHARDS:
        raise ConfigError(f"a stream has 1 to {MAX_SHARDS} shards, not {target}")
    steps: list[int] = []
    while current != target:
        current = min(target, current * 2) if target > current else max(target, -(-current // 2))
        steps.append(current)
    return steps


def wait_active(kinesis: Any, stream: str, timeout_s: float, poll_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {stream} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def reshard(kinesis: Any, stream: str, target: int, timeout_s: float = 600.0) -> list[Step]:
    """Bring ``stream`` to ``target`` open shards; one Step per UpdateShardCount call."""
    wait_active(kinesis, stream, timeout_s)
    done: list[Step] = []
    current = len(open_shards(kinesis, stream))
    for count in plan(current, target):
        started = time.monotonic()
        kinesis.update_shard_count(StreamName=stream, TargetShardCount=count, ScalingType="UNIFORM_SCALING")
        wait_active(kinesis, stream, timeout_s)
        now_open = len(open_shards(kinesis, stream))
        done.append(Step(current, now_open, time.monotonic() - started))
        log.info("resharded", stream=stream, before=current, after=now_open)
        current = now_open
    return done


@click.command("reshard")
@click.option("--shards", "target", type=int, required=True, help="Open shards the stream should have.")
@click.option("--timeout-s", default=600.0, show_default=True, help="How long each step may take.")
def reshard_command(target: int, timeout_s: float) -> None:
    """Change the stream's shard count (UpdateShardCount, in steps of at most x2 or /2).

    Running consumers carry on: closed shards are drained to their end, then their children
    start with the devices' state. Each step is billed as the shards it opens; see
    docs/deploy.md ("Scaling") for when to reshard and when to add tasks.

    \b
    Examples:
      wattstream reshard --shards 4
      WATTSTREAM_STREAM_NAME=energy-readings wattstream reshard --shards 16
    """
    from consumer.commands import _settings

    settings = _settings()
    kinesis = settings.client("kinesis")
    try:
        steps = reshard(kinesis, settings.stream_name, target, timeout_s)
    except (ConfigError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not steps:
        click.echo(f"{settings.stream_name}: already {target} open shards")
    for step in steps:
        click.echo(f"{settings.stream_name}: {step.before} -> {step.after} open shards in {step.seconds:.1f} s")
    shards = open_shards(kinesis, settings.stream_name)
    click.echo("open shards: " + " ".join(s["ShardId"] for s in shards))
