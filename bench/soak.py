"""The soak: the whole local pipeline under chaos for N minutes, then checked reading by reading.

Boxes (``wattstream device simulate``) publish over MQTT/TLS to Mosquitto, ``wattstream bridge``
puts their messages on the stream, and a direct producer adds a fleet whose meters reset,
glitch, repeat and reorder (``bench.soak_corpus``). Several ``wattstream consume`` workers
share the shards. Meanwhile a chaos loop kills a consumer, the bridge or the boxes every few
seconds (SIGKILL or SIGTERM) and starts it again, and now and then freezes the broker. Half of
the consumer kills aim inside a flush: the loop watches the worker's log and sends SIGKILL the
moment a batch's manifest is written (``batch_begun``), before its checkpoint. The restarted
workers' replays of interrupted batches show how many landed there.

At the end every reading is compared with an independent account: for the boxes, their own
spools and the raw stream; for the direct fleet, the corpus's account. It prints kills by
target, records in, readings stored, lost and doubled, the largest lag and the p50/p99 time
from a record's arrival on the stream to its batch's checkpoint. Exit 1 if anything was lost
or doubled.

    .venv/bin/python -m bench.soak --minutes 30          # make soak
    .venv/bin/python -m bench.soak --minutes 3 --kill-every-s 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak_corpus import Corpus
from consumer.settings import Settings
from devstack import broker as broker_lib
from devstack.loadgen import put_records
from devstack.localaws import LocalAws, free_port
from devstack.provision import provision
from devstack.report import energy_by_device, samples_by_device
from devstack.stack import (
    ChildProcess,
    ConsumerProcess,
    Simulation,
    fleet_truth,
    issue_certificates,
    read_spools,
    read_stream,
    start_bridge,
    wait_until,
)
from sinks.archive import Archive
from sinks.read import fleet_buckets

TOLERANCE_WH = 0.01


@dataclass
class Worker:
    """One consumer slot: the same worker id across restarts, a new log file per start."""

    worker_id: str
    env: dict[str, str]
    work: Path
    starts: int = 0
    process: ConsumerProcess | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        log = self.work / f"{self.worker_id}-{self.starts:03d}.log"
        env = {
            **self.env,
            "WATTSTREAM_WORKER_ID": self.worker_id,
            "WATTSTREAM_WORK_DIR": str(self.work / self.worker_id),
            "WATTSTREAM_METRICS_DIR": str(self.work / self.worker_id / "metrics"),
        }
        self.logs.append(log)
        self.process = ConsumerProcess(env, log, free_port()).start(wait_s=120)

    def kill_in_flush(self, timeout_s: float) -> bool:
        """SIGKILL right after the next ``batch_begun`` line; False if none came in time."""
        assert self.process is not None
        path = self.process.log_path
        offset = path.stat().st_size
        deadline = time.monotonic() + timeout_s
        with open(path, "rb") as log:
            log.seek(offset)
            while time.monotonic() < deadline:
                chunk = log.read()
                if b'"event": "batch_begun"' in chunk:
                    self.process.kill()
                    return True
                time.sleep(0.002)
        self.process.kill()
        return False


@dataclass
class Chaos:
    rng: random.Random
    workers: list[Worker]
    bridge_start: Any
    boxes_start: Any
    broker: Any
    kills: Counter = field(default_factory=Counter)
    pauses: int = 0
    bridge: ChildProcess | None = None
    boxes: Simulation | None = None
    errors: list[str] = field(default_factory=list)

    def strike(self) -> None:
        roll = self.rng.random()
        if roll < 0.6:
            self._consumer()
        elif roll < 0.8:
            self._bridge()
        else:
            self._boxes()

    def _consumer(self) -> None:
        worker = self.rng.choice(self.workers)
        mode = self.rng.choice(["sigkill_in_flush", "sigkill_in_flush", "sigkill", "sigterm"])
        assert worker.process is not None
        if mode == "sigkill_in_flush":
            if not worker.kill_in_flush(timeout_s=30):
                mode = "sigkill"
        elif mode == "sigkill":
            worker.process.kill()
        else:
            code = worker.process.stop(timeout_s=60)
            if code != 0:
                self.errors.append(f"{worker.worker_id} exited {code} after SIGTERM")
        self.kills[f"consumer_{mode}"] += 1
        time.sleep(self.rng.uniform(0.5, 3.0))
        worker.start()

    def _bridge(self) -> None:
        assert self.bridge is not None and self.bridge.proc is not None
        if self.rng.random() < 0.5:
            self.bridge.proc.kill()
            self.bridge.proc.wait()
            self.kills["bridge_sigkill"] += 1
        else:
            self.bridge.stop()
            self.kills["bridge_sigterm"] += 1
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.bridge = self.bridge_start()

    def _boxes(self) -> None:
        assert self.boxes is not None and self.boxes.child is not None and self.boxes.child.proc is not None
        if not self.boxes.child.running:
            return
        if self.rng.random() < 0.5:
            self.boxes.child.proc.kill()
            self.boxes.child.proc.wait()
            self.kills["boxes_sigkill"] += 1
        else:
            os.kill(self.boxes.child.proc.pid, signal.SIGTERM)
            self.boxes.child.proc.wait(timeout=120)
            self.kills["boxes_sigterm"] += 1
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.boxes = self.boxes_start()

    def pause_broker(self) -> None:
        os.kill(self.broker.pid, signal.SIGSTOP)
        time.sleep(self.rng.uniform(3.0, 12.0))
        os.kill(self.broker.pid, signal.SIGCONT)
        self.pauses += 1


def _flush_lines(paths: list[Path]) -> list[dict[str, Any]]:
    lines = []
    for path in paths:
        if not path.exists():
            continue
        for raw in path.read_text(errors="replace").splitlines():
            if '"event": "batch_flushed"' in raw:
                try:
                    lines.append(json.loads(raw[raw.index("{") :]))
                except ValueError:
                    continue
    return lines


def _replays(path: Path) -> int:
    if not path.exists():
        return 0
    text = path.read_text(errors="replace")
    return text.count('"trigger": "replay"')


def latency_quantiles(flushes: list[dict[str, Any]], quantiles: tuple[float, ...]) -> list[float]:
    """Arrival-to-checkpoint seconds; each batch's records spread evenly between its arrivals."""
    samples: list[float] = []
    for line in flushes:
        n, first, last, done = line["records"], line["arrival_first_ms"], line["arrival_last_ms"], line["committed_ms"]
        step = (last - first) / (n - 1) if n > 1 else 0.0
        samples.extend((done - (first + k * step)) / 1000 for k in range(n))
    samples.sort()
    if not samples:
        return [0.0 for _ in quantiles]
    return [samples[min(len(samples) - 1, int(q * len(samples)))] for q in quantiles]


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(args.work_dir).resolve() / time.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True)
    aws = LocalAws(port=free_port(), kinesis_port=free_port(), log_dir=work / "emulators").start()
    suffix = uuid.uuid4().hex[:6]
    env = {
        **aws.env,
        "WATTSTREAM_STREAM_NAME": f"soak-{suffix}",
        "WATTSTREAM_APPLICATION_NAME": f"soak-{suffix}",
        "WATTSTREAM_AGGREGATES_TABLE": f"soak-agg-{suffix}",
        "WATTSTREAM_STATE_TABLE": f"soak-state-{suffix}",
        "WATTSTREAM_RAW_BUCKET": f"soak-raw-{suffix}",
        "WATTSTREAM_SHARD_COUNT": str(args.shards),
        "WATTSTREAM_MAX_AGE_S": "2",
        "WATTSTREAM_MAX_RECORDS": "400",
        "WATTSTREAM_FAILOVER_TIME_MS": "4000",
        "WATTSTREAM_SHUTDOWN_GRACE_MS": "15000",
        "WATTSTREAM_IDLE_TIME_BETWEEN_READS_MS": "250",
        "WATTSTREAM_KCL_EXTRA_PROPERTIES": '{"leaseAssignmentIntervalMillis": "1000", "shardSyncIntervalMillis": "1000"}',
        "WATTSTREAM_JAVA_OPTIONS": "-Xmx384m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    os.environ.update(env)
    settings = Settings()
    provision(settings)
    kinesis = settings.client("kinesis")
    things = [f"box-{i:04d}" for i in range(1, args.boxes + 1)]
    cert_dir = issue_certificates(work / "certs", things)
    broker = broker_lib.start(work / "mosquitto", cert_dir)
    deadline = time.monotonic() + args.minutes * 60

    def bridge_start() -> ChildProcess:
        return start_bridge(broker.port, cert_dir, settings.stream_name, env, work / "bridge.log")

    def boxes_start() -> Simulation:
        remaining = max(5.0, deadline - time.monotonic())
        return Simulation(
            args.boxes,
            remaining,
            broker.port,
            cert_dir,
            work / "spool",
            work,
            interval_s=2.0,
            speed=1.0,
            max_readings=20,
            max_wait_s=10.0,
            drain_s=90.0,
            seed=args.seed,
            env=env,
        ).start()

    workers = [Worker(f"soak-w{i}", env, work) for i in range(args.workers)]
    corpus = Corpus(args.devices, seed=args.seed, start_ms=time.time_ns() // 1_000_000 - 60_000)
    accepted: list[str] = []
    stop = threading.Event()
    produced: list[BaseException] = []

    def produce() -> None:
        try:
            while not stop.wait(corpus.period_s):
                put_records(kinesis, settings.stream_name, corpus.wave(time.time_ns() // 1_000_000), accepted=accepted)
            put_records(kinesis, settings.stream_name, corpus.flush(), accepted=accepted)
        except BaseException as exc:  # noqa: BLE001 - reported below
            produced.append(exc)

    chaos = Chaos(rng, workers, bridge_start, boxes_start, broker)
    producer = threading.Thread(target=produce, name="producer", daemon=True)
    try:
        for worker in workers:
            worker.start()
        chaos.bridge = bridge_start()
        chaos.boxes = boxes_start()
        producer.start()
        started = last_pause = time.monotonic()
        while time.monotonic() < deadline - 20:
            time.sleep(rng.uniform(0.3, 1.7) * args.kill_every_s)
            chaos.strike()
            if time.monotonic() - last_pause > args.pause_every_s:
                chaos.pause_broker()
                last_pause = time.monotonic()
            done = sum(chaos.kills.values())
            print(f"[{(time.monotonic() - started) / 60:5.1f} min] kills {done} {dict(chaos.kills)}", flush=True)
        stop.set()
        producer.join(timeout=120)
        if produced:
            raise RuntimeError("the direct producer failed") from produced[0]
        chaos.boxes.wait()
        return _verify(args, settings, kinesis, work, workers, chaos, corpus, accepted)
    finally:
        stop.set()
        for worker in workers:
            if worker.process is not None:
                worker.process.kill()
        if chaos.bridge is not None:
            chaos.bridge.stop()
        if chaos.boxes is not None:
            chaos.boxes.stop()
        broker_lib.stop(broker)
        aws.stop()


def _verify(
    args: argparse.Namespace,
    settings: Settings,
    kinesis: Any,
    work: Path,
    workers: list[Worker],
    chaos: Chaos,
    corpus: Corpus,
    accepted: list[str],
) -> int:
    spools = read_spools(work / "spool")
    found: dict[str, Any] = {}

    def stream_complete() -> bool:
        found["records"] = read_stream(kinesis, settings.stream_name)
        box_records = [r for r in found["records"] if r["device_id"].startswith("box-")]
        found["truth"], found["problems"] = fleet_truth(spools, box_records)
        return not found["problems"]

    wait_until(stream_complete, 180, 2.0, "every box reading on the stream")
    records = found["records"]
    on_stream = {r["_sequence_number"] for r in records}
    expected_energy = {d: t.energy_wh for d, t in found["truth"].items()} | corpus.expected_energy_wh()
    expected_samples = {d: t.readings for d, t in found["truth"].items()}
    for (device_id, _), n in corpus.expected_samples().items():
        expected_samples[device_id] = expected_samples.get(device_id, 0) + n
    archive = Archive(settings.client("s3"), settings.raw_bucket)
    dynamodb = settings.client("dynamodb")

    def archived() -> Counter:
        return Counter(line["sequence_number"] for key in archive.keys("raw/") for line in archive.get(key))

    def stored_all() -> bool:
        samples = samples_by_device(fleet_buckets(dynamodb, settings.aggregates_table))
        return on_stream <= set(archived()) and all(samples.get(d) == n for d, n in expected_samples.items())

    try:
        wait_until(stored_all, 300, 2.0, "every reading stored")
    except TimeoutError:
        pass  # the figures below say what is missing
    for worker in workers:
        assert worker.process is not None
        worker.process.stop(timeout_s=60)

    counts = archived()
    items = fleet_buckets(dynamodb, settings.aggregates_table)
    samples, energy = samples_by_device(items), energy_by_device(items)
    hour_samples = {
        (i["device_id"], i["bucket"]): int(i.get("samples", 0)) for i in items if i["bucket"].startswith("h#")
    }
    hour_wrong = sum(1 for key, n in corpus.expected_samples().items() if hour_samples.get(key) != n)
    lost = sum(max(0, n - samples.get(d, 0)) for d, n in expected_samples.items())
    doubled = sum(max(0, samples.get(d, 0) - n) for d, n in expected_samples.items())
    energy_wrong = {
        d: (round(energy.get(d, 0.0), 3), round(e, 3))
        for d, e in expected_energy.items()
        if abs(energy.get(d, 0.0) - e) > TOLERANCE_WH
    }
    consumer_kills = sum(n for k, n in chaos.kills.items() if k.startswith("consumer"))
    restart_logs = [path for w in workers for path in w.logs[1:]]
    replays = sum(1 for path in restart_logs if _replays(path) > 0)
    replayed_batches = sum(_replays(path) for w in workers for path in w.logs)
    flushes = _flush_lines([path for w in workers for path in w.logs])
    p50, p99, top = latency_quantiles(flushes, (0.5, 0.99, 1.0))
    report = {
        "minutes": args.minutes,
        "kills": dict(sorted(chaos.kills.items())),
        "kills_total": sum(chaos.kills.values()),
        "broker_pauses": chaos.pauses,
        "consumer_kills": consumer_kills,
        "restarts_that_replayed_a_batch": replays,
        "batches_replayed": replayed_batches,
        "records_in": len(on_stream),
        "records_archived_missing": len(on_stream - set(counts)),
        "records_archived_twice": sum(1 for n in counts.values() if n > 1),
        "readings_expected": sum(expected_samples.values()),
        "readings_stored": sum(samples.get(d, 0) for d in expected_samples),
        "readings_lost": lost,
        "readings_doubled": doubled,
        "devices_energy_wrong": len(energy_wrong),
        "hours_samples_wrong": hour_wrong,
        "max_lag_s": round(top, 1),
        "latency_p50_s": round(p50, 2),
        "latency_p99_s": round(p99, 2),
        "errors": chaos.errors,
    }
    print(json.dumps(report, indent=2))
    if energy_wrong:
        print("energy differs (stored, expected):", dict(list(energy_wrong.items())[:10]), file=sys.stderr)
    bad = (
        lost
        or doubled
        or energy_wrong
        or hour_wrong
        or report["records_archived_missing"]
        or report["records_archived_twice"]
        or chaos.errors
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="How long the chaos lasts.")
    parser.add_argument("--kill-every-s", type=float, default=10.0, help="Mean pause between two kills.")
    parser.add_argument("--pause-every-s", type=float, default=180.0, help="How often the broker is frozen.")
    parser.add_argument("--boxes", type=int, default=20, help="Simulated boxes on MQTT.")
    parser.add_argument("--devices", type=int, default=40, help="Devices of the direct producer's fleet.")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="wattstream consume processes.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work-dir", default=".local/soak", help="Logs and spools of each run, one folder per run.")
    args = parser.parse_args(argv)
    if broker_lib.mosquitto_binary() is None:
        parser.error("mosquitto is not installed (make install)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
