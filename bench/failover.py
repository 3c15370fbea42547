"""How long a dead worker's shards wait: from SIGKILL of the KCL leader until each is flowing again.

On the local emulators (kinesis-mock and moto server, started here on free ports) with the
real MultiLangDaemon and KCL's own timings (failoverTimeMillis 10000, leaseAssignmentIntervalMillis
and the leader lock at their defaults) unless a flag changes them. One ``wattstream consume``
worker, which is therefore the KCL leader, reads a stream that a producer keeps writing to. It is
killed with SIGKILL and a replacement is started ``--start-delay-s`` later, as ECS would:

  new-id  the replacement has a worker id of its own (each Fargate task's host name: today)
  slot    both run with WATTSTREAM_WORKER_ID=slot: the replacement claims the dead one's slot

A shard is flowing again once its lease carries a checkpoint past the one the dead worker left:
a batch read after the kill was archived, stored and checkpointed. The figure includes the start
delay, the daemon's start and up to one batch age (``--max-age-s``). The table also shows when a
live worker took KCL 3's leader lock (held 120 s past the dead leader's last heartbeat), which a
new worker id has to wait for before any lease is assigned to it.

    .venv/bin/python -m bench.failover [--scenario new-id --scenario slot] [--shards 2] [--start-delay-s 20]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.settings import Settings
from devstack.loadgen import Fleet, put_records
from devstack.localaws import LocalAws, free_port
from devstack.provision import provision
from devstack.stack import ConsumerProcess, wait_until
from sinks.read import scan_items

SCENARIOS = ("new-id", "slot")


@dataclass(frozen=True)
class Result:
    scenario: str
    dead_id: str
    replacement_id: str
    started_s: float  # replacement's metrics up, after the kill
    first_back_s: float
    all_back_s: float
    leader_s: float | None  # the leader lock taken by the replacement; None: not by all_back_s


class Producer:
    """One message per device every second, timestamped now, until stopped."""

    def __init__(self, kinesis: Any, stream: str, devices: int) -> None:
        self.kinesis, self.stream = kinesis, stream
        self.fleet = Fleet(devices, interval_ms=200, seed=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="producer", daemon=True)
        self.errors: list[BaseException] = []

    def _loop(self) -> None:
        try:
            while not self._stop.wait(1.0):
                now_ms = time.time_ns() // 1_000_000
                put_records(self.kinesis, self.stream, self.fleet.messages(now_ms, 5, now_ms))
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.errors:
            raise RuntimeError("the producer failed") from self.errors[0]


def _leases(settings: Settings) -> dict[str, dict[str, Any]]:
    client = settings.client("dynamodb")
    try:
        return {item["leaseKey"]: item for item in scan_items(client, settings.application_name)}
    except client.exceptions.ResourceNotFoundException:
        return {}


def _leader(settings: Settings) -> dict[str, Any]:
    """KCL 3's leader lock (``ownerName``, ``recordVersionNumber``), or {} before there is one."""
    client = settings.client("dynamodb")
    try:
        items = scan_items(client, f"{settings.application_name}-CoordinatorState")
    except client.exceptions.ResourceNotFoundException:
        return {}
    return next((item for item in items if item.get("key") == "Leader"), {})


def _flowing(leases: dict[str, dict[str, Any]], owner: str, shards: int) -> bool:
    held = [lease for lease in leases.values() if lease.get("leaseOwner") == owner]
    return len(held) == shards and all(str(lease.get("checkpoint", "")).isdigit() for lease in held)


def run_once(scenario: str, args: argparse.Namespace, aws_env: dict[str, str], work: Path) -> Result:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "WATTSTREAM_STREAM_NAME": f"readings-{suffix}",
        "WATTSTREAM_APPLICATION_NAME": f"consumer-{suffix}",
        "WATTSTREAM_AGGREGATES_TABLE": f"aggregates-{suffix}",
        "WATTSTREAM_STATE_TABLE": f"state-{suffix}",
        "WATTSTREAM_RAW_BUCKET": f"raw-{suffix}",
        "WATTSTREAM_SHARD_COUNT": str(args.shards),
    }
    settings = Settings(**{k.removeprefix("WATTSTREAM_").lower(): v for k, v in names.items()})
    provision(settings)
    base = {
        **aws_env,
        **names,
        "WATTSTREAM_MAX_AGE_S": str(args.max_age_s),
        "WATTSTREAM_FAILOVER_TIME_MS": str(args.failover_time_ms),
        "WATTSTREAM_KCL_EXTRA_PROPERTIES": args.kcl_extra_properties,
        "WATTSTREAM_WORKER_SLOT_TTL_S": str(args.slot_ttl_s),
        "WATTSTREAM_JAVA_OPTIONS": "-Xmx384m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }

    def start(index: int) -> tuple[ConsumerProcess, str]:
        worker_id = "slot" if scenario == "slot" else f"task-{index}-{suffix}"
        env = {
            **base,
            "WATTSTREAM_WORKER_ID": worker_id,
            "WATTSTREAM_WORK_DIR": str(work / suffix / f"c{index}"),
            "WATTSTREAM_METRICS_DIR": str(work / suffix / f"c{index}" / "metrics"),
        }
        consumer = ConsumerProcess(env, work / suffix / f"consumer-{index}.log", free_port()).start()
        props = (work / suffix / f"c{index}" / "consumer.properties").read_text().splitlines()
        return consumer, next(p for p in props if p.startswith("workerId")).split("=", 1)[1].strip()

    producer = Producer(settings.client("kinesis"), settings.stream_name, args.devices).start()
    consumers: list[ConsumerProcess] = []
    try:
        dead, dead_id = start(0)
        consumers.append(dead)
        wait_until(lambda: _flowing(_leases(settings), dead_id, args.shards), 300, 1.0, "every shard flowing")
        wait_until(lambda: _leader(settings).get("ownerName") == dead_id, 300, 1.0, "the worker leading")
        time.sleep(args.warmup_s)

        dead.kill()
        killed = time.monotonic()
        left = {shard: lease.get("checkpoint") for shard, lease in _leases(settings).items()}
        lock = _leader(settings).get("recordVersionNumber")
        time.sleep(max(0.0, killed + args.start_delay_s - time.monotonic()))
        replacement, replacement_id = start(1)
        consumers.append(replacement)
        started_s = time.monotonic() - killed

        back: dict[str, float] = {}
        leader_s: float | None = None
        deadline = killed + args.timeout_s
        while len(back) < len(left) and time.monotonic() < deadline:
            if leader_s is None and _leader(settings).get("recordVersionNumber") != lock:
                leader_s = time.monotonic() - killed
            for shard, lease in _leases(settings).items():
                checkpoint = str(lease.get("checkpoint", ""))
                if shard in left and shard not in back and checkpoint.isdigit() and checkpoint != left[shard]:
                    back[shard] = time.monotonic() - killed
            time.sleep(0.25)
        if len(back) < len(left):
            raise TimeoutError(
                f"{scenario}: shards {sorted(set(left) - set(back))} not flowing after {args.timeout_s} s"
            )
        return Result(scenario, dead_id, replacement_id, started_s, min(back.values()), max(back.values()), leader_s)
    finally:
        producer.stop()
        for consumer in consumers:
            consumer.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: both")
    parser.add_argument("--runs", type=int, default=1, help="kills per scenario")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument(
        "--start-delay-s",
        type=float,
        default=20.0,
        help="kill to replacement start (a Fargate task takes at least this; above the slot ttl)",
    )
    parser.add_argument("--slot-ttl-s", type=float, default=15.0, help="WATTSTREAM_WORKER_SLOT_TTL_S")
    parser.add_argument("--failover-time-ms", type=int, default=10_000, help="KCL failoverTimeMillis")
    parser.add_argument(
        "--kcl-extra-properties",
        default="{}",
        help='more KCL properties as JSON, e.g. \'{"leaseAssignmentIntervalMillis": "5000"}\'',
    )
    parser.add_argument("--max-age-s", type=float, default=2.0, help="batch age: how often a shard checkpoints")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="steady consumption before the kill")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args()
    json.loads(args.kcl_extra_properties)  # fail before the emulators start

    work = Path(tempfile.mkdtemp(prefix="wattstream-failover-"))
    aws = LocalAws(port=free_port(), kinesis_port=free_port(), log_dir=work / "emulators").start()
    os.environ.update(aws.env)
    results: list[Result] = []
    try:
        for scenario in args.scenario or SCENARIOS:
            for _ in range(args.runs):
                result = run_once(scenario, args, aws.env, work)
                results.append(result)
                print(
                    f"{result.scenario}: all {args.shards} shards flowing {result.all_back_s:.1f} s after the kill",
                    flush=True,
                )
    finally:
        aws.stop()

    print(
        f"\n{args.shards} shards, replacement started {args.start_delay_s:g} s after SIGKILL of the only worker "
        f"(the leader), failoverTimeMillis {args.failover_time_ms}, KCL extra {args.kcl_extra_properties}, "
        f"slot ttl {args.slot_ttl_s:g} s; logs in {work}\n"
    )
    print(
        "| replacement | worker ids | replacement up (s) | leader lock taken (s) | first shard flowing (s) "
        "| all shards flowing (s) |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        leader = f"{r.leader_s:.1f}" if r.leader_s is not None else "not yet"
        print(
            f"| {r.scenario} | {r.dead_id} -> {r.replacement_id} | {r.started_s:.1f} | {leader} "
            f"| {r.first_back_s:.1f} | {r.all_back_s:.1f} |"
        )


if __name__ == "__main__":
    main()
