"""A whole local pipeline as child processes: the emulators and consumers. Demo and tests.

Every consumer runs in its own process group, so ``kill`` takes down the daemon and all its
record processors at once, like a container that dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.spool import SpoolFile, inspect_dir


@dataclass
class ConsumerProcess:
    """``wattstream consume`` with its own settings; ``env`` carries endpoints and WATTSTREAM_*."""

    env: dict[str, str]
    log_path: Path
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, wait_s: float = 60.0) -> ConsumerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **self.env, WATTSTREAM_METRICS_PORT=str(self.metrics_port))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "consume"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"consumer exited with {self.proc.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(self.metrics_url, timeout=1).read()  # noqa: S310 - loopback
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise TimeoutError(f"consumer metrics not up after {wait_s} s; see {self.log_path}")

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM: the daemon asks every processor to flush and checkpoint, then exits."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        """kill -9 of the runner, the daemon and every record processor."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def wait_for(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passed; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def wait_until(
    predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.5, what: str = "condition"
) -> None:
    """As ``wait_for``, raising TimeoutError when it never held."""
    if not wait_for(predicate, timeout_s, interval_s):
        raise TimeoutError(f"{what} not reached in {timeout_s} s")


# --- the MQTT half of the path: certificates, bridge, simulated boxes, and the truth ---------
#
# Used by ``wattstream demo`` and tests/integration/e2e. Every child runs in its own session
# (Ctrl-C reaches only the parent, whose ``finally`` stops the children in order) and is
# stopped by its own PID.


def wattstream_command(*args: str) -> list[str]:
    """The ``wattstream`` CLI of this interpreter (what the console script runs)."""
    return [sys.executable, "-m", "consumer.cli", *args]


def issue_certificates(cert_dir: Path, things: list[str]) -> Path:
    """CA (kept if present), broker and bridge certificates, and one certificate per thing."""
    from device import certs

    certs.init_authority(cert_dir)
    for thing in things:
        certs.issue_device(cert_dir, thing)
    return cert_dir


@dataclass
class ChildProcess:
    """One CLI child with stdout/stderr in files, stopped by its PID (SIGTERM, then SIGKILL)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    stdout_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **self.env)
        with open(self.log_path, "ab") as log:
            out = open(self.stdout_path, "wb") if self.stdout_path else log  # noqa: SIM115
            try:
                self.proc = subprocess.Popen(self.args, env=env, stdout=out, stderr=log, start_new_session=True)
            finally:
                if out is not log:
                    out.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.proc.wait()


def start_bridge(
    port: int, cert_dir: Path, stream: str, env: dict[str, str], log_path: Path, wait_s: float = 30.0
) -> ChildProcess:
    """``wattstream bridge``; returns once its persistent subscription stands."""
    before = log_path.read_text(errors="replace").count("bridge_subscribed") if log_path.exists() else 0
    bridge = ChildProcess(
        wattstream_command("bridge", "--port", str(port), "--cert-dir", str(cert_dir), "--stream-name", stream),
        {"WATTSTREAM_BRIDGE_RECONNECT_MAX_S": "2", **env},
        log_path,
    ).start()
    try:
        wait_until(
            lambda: bridge.log_text().count("bridge_subscribed") > before or not bridge.running,
            wait_s,
            0.1,
            "bridge subscribed",
        )
        if not bridge.running:
            code = bridge.proc.returncode if bridge.proc is not None else None
            raise RuntimeError(f"bridge exited with {code}: {bridge.log_text()[-2000:]}")
    except BaseException:
        bridge.stop()
        raise
    return bridge


def start_serve(
    env: dict[str, str], log_path: Path, *, host: str = "127.0.0.1", port: int = 8080, wait_s: float = 30.0
) -> tuple[ChildProcess, str]:
    """``wattstream serve`` (the API and the fleet page) over ``env``'s tables; returns once it
    answers, with the page's URL. Stop it with ``.stop()``."""
    url = f"http://{host}:{port}/"
    serve = ChildProcess(wattstream_command("serve", "--host", host, "--port", str(port)), env, log_path).start()

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "health", timeout=1) as response:  # noqa: S310 - our own child
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_until(lambda: up() or not serve.running, wait_s, 0.2, "wattstream serve answering")
        if not serve.running:
            raise RuntimeError(f"wattstream serve exited: {serve.log_text()[-2000:]}")
    except BaseException:
        serve.stop()
        raise
    return serve, url


@dataclass
class Simulation:
    """``wattstream device simulate``: N boxes, one MQTT/TLS connection and one spool each."""

    devices: int
    duration_s: float
    port: int
    cert_dir: Path
    spool_dir: Path
    work_dir: Path
    interval_s: float = 10.0
    speed: float = 1.0
    max_readings: int = 50
    max_wait_s: float = 60.0
    drain_s: float = 60.0
    seed: int = 0
    env: dict[str, str] = field(default_factory=dict)
    child: ChildProcess | None = field(default=None, init=False)

    def start(self) -> Simulation:
        args = wattstream_command(
            "device",
            "simulate",
            "--devices",
            str(self.devices),
            "--duration-s",
            str(self.duration_s),
            "--interval-s",
            str(self.interval_s),
            "--speed",
            str(self.speed),
            "--port",
            str(self.port),
            "--cert-dir",
            str(self.cert_dir),
            "--spool-dir",
            str(self.spool_dir),
            "--max-readings",
            str(self.max_readings),
            "--max-wait-s",
            str(self.max_wait_s),
            "--drain-s",
            str(self.drain_s),
            "--reconnect-max-s",
            "2",
            "--seed",
            str(self.seed),
            "--no-issue-certs",
        )
        self.child = ChildProcess(
            args, self.env, self.work_dir / "simulate.log", self.work_dir / "simulate-summary.json"
        ).start()
        return self

    @property
    def timeout_s(self) -> float:
        """Time the process may take: reading, draining, and a margin for a busy machine."""
        return self.duration_s + self.drain_s + 60.0

    def wait(self) -> dict[str, Any]:
        """Wait for the end; the JSON summary the simulator printed (readings, messages, …)."""
        assert self.child is not None
        code = self.child.wait(self.timeout_s)
        if code != 0:
            raise RuntimeError(f"device simulate exited with {code}: {self.child.log_text()[-2000:]}")
        return json.loads((self.work_dir / "simulate-summary.json").read_text())

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout_s=self.drain_s + 10)


def read_spools(spool_dir: Path) -> dict[str, SpoolFile]:
    """Every box's spool after it stopped (the box numbers readings 1..``last.seq``)."""
    return inspect_dir(spool_dir)


def read_stream(kinesis: Any, stream: str, idle_polls: int = 2) -> list[dict[str, Any]]:
    """Every record on every shard from TRIM_HORIZON, decoded (plain GetRecords, no KCL)."""
    import orjson
    from botocore.exceptions import ClientError

    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        empty = 0
        while iterator and empty < idle_polls:
            try:
                response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in (
                    "ProvisionedThroughputExceededException",
                    "LimitExceededException",
                ):
                    time.sleep(0.3)
                    continue
                raise
            for rec in response["Records"]:
                records.append(
                    {
                        **orjson.loads(rec["Data"]),
                        "_partition_key": rec["PartitionKey"],
                        "_sequence_number": rec["SequenceNumber"],
                    }
                )
            iterator = response.get("NextShardIterator")
            caught_up = not response["Records"] and response.get("MillisBehindLatest", 0) == 0
            empty = empty + 1 if caught_up else 0
            if caught_up:
                time.sleep(0.2)
    return records


@dataclass(frozen=True)
class DeviceTruth:
    """One box's metered truth: its distinct readings and its register's rise."""

    readings: int
    first_register_wh: float
    last_register_wh: float

    @property
    def energy_wh(self) -> float:
        return self.last_register_wh - self.first_register_wh


def fleet_truth(
    spools: dict[str, SpoolFile], records: list[dict[str, Any]]
) -> tuple[dict[str, DeviceTruth], list[str]]:
    """Per-device truth from the boxes' spools and the raw stream, and every inconsistency found.

    The spool says which readings the box took (seq 1..last_seq, all acknowledged when none is
    left) and its last register; the stream (deduplicated on (device_id, seq), records whose
    ``device_id`` is not the publishing ``thing`` left out) holds the first register, which the
    box deleted once acknowledged. Nothing here reads the consumer's output.
    """
    sent: dict[str, dict[int, float]] = {}
    for rec in records:
        if rec.get("device_id") != rec.get("thing"):
            continue
        by_seq = sent.setdefault(rec["device_id"], {})
        for reading in rec["readings"]:
            by_seq.setdefault(reading["seq"], reading["energy_wh"])
    problems: list[str] = []
    truth: dict[str, DeviceTruth] = {}
    for device_id, spool in sorted(spools.items()):
        on_stream = sent.get(device_id, {})
        if spool.unacked:
            problems.append(f"{device_id}: {spool.unacked} readings never acknowledged")
        missing = set(range(1, spool.last.seq + 1)) - set(on_stream)
        if missing:
            problems.append(f"{device_id}: {len(missing)} of {spool.last.seq} readings not on the stream")
        extra = set(on_stream) - set(range(1, spool.last.seq + 1))
        if extra:
            problems.append(f"{device_id}: {len(extra)} readings on the stream the box never took")
        if spool.last.seq == 0 or 1 not in on_stream:
            continue
        last = spool.last.energy_wh
        if spool.last.seq in on_stream and on_stream[spool.last.seq] != last:
            problems.append(f"{device_id}: last register {on_stream[spool.last.seq]} on the stream, {last} spooled")
        if last is None:
            problems.append(f"{device_id}: no last register spooled")
            continue
        truth[device_id] = DeviceTruth(spool.last.seq, on_stream[1], float(last))
    for device_id in sorted(set(sent) - set(spools)):
        problems.append(f"{device_id}: on the stream but has no spool")
    return truth, problems
