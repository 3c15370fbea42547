"""Real Mosquitto (mutual TLS + ACL) and kinesis-mock, started per test run on free ports.

Nothing here is a mock of the broker or of boto3: the boxes, the bridge and the tests talk to
the real servers over loopback. Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from device import certs
from device.spool import inspect_dir
from devstack import broker as broker_lib
from devstack.localaws import kinesis_mock
from devstack.stack import read_stream, wait_for

REPO = Path(__file__).resolve().parents[3]
THINGS = ("box-a", "box-b", "box-0001", "box-0002", "box-0003")

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration/mqtt" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("certs")
    certs.init_authority(root)
    for thing in THINGS:
        certs.issue_device(root, thing)
    return root


@pytest.fixture(scope="session")
def foreign_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA issuing a certificate for box-a: must not be accepted."""
    root = tmp_path_factory.mktemp("foreign-certs")
    certs.init_authority(root)
    certs.issue_device(root, "box-a")
    return root


class BrokerControl:
    """The test's Mosquitto; ``stop``/``start`` keep its port and persistence folder."""

    def __init__(self, work_dir: Path, cert_dir: Path) -> None:
        self.current = broker_lib.start(work_dir, cert_dir)
        self.port = self.current.port

    def stop(self) -> None:
        broker_lib.stop(self.current)

    def start(self) -> None:
        self.current = broker_lib.restart(self.current)


@pytest.fixture
def broker(tmp_path: Path, cert_dir: Path) -> Iterator[BrokerControl]:
    if broker_lib.mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    control = BrokerControl(tmp_path / "mosquitto", cert_dir)
    yield control
    control.stop()


@dataclass
class KinesisMock:
    endpoint: str

    def client(self):
        return boto3.client(
            "kinesis",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture(scope="session")
def kinesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinesisMock]:
    with kinesis_mock(log=tmp_path_factory.mktemp("kinesis") / "kinesis.log") as url:
        yield KinesisMock(url)


@pytest.fixture
def stream(kinesis: KinesisMock) -> str:
    """A fresh stream per test, so tests never see each other's records."""
    name = f"wattstream-test-{uuid.uuid4().hex[:8]}"
    client = kinesis.client()
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return name


@dataclass(frozen=True)
class Kit:
    """The helpers below, handed to tests as a fixture (test modules import nothing from here)."""

    read_stream: Callable[..., list[dict]]
    readings_on_stream: Callable[..., set[tuple[str, int]]]
    spooled_truth: Callable[[Path], tuple[set[tuple[str, int]], int]]
    wait_for: Callable[..., bool]


@pytest.fixture
def kit() -> Kit:
    return Kit(read_stream, readings_on_stream, spooled_truth, wait_for)


def readings_on_stream(client, stream: str) -> set[tuple[str, int]]:
    return {(rec["device_id"], r["seq"]) for rec in read_stream(client, stream) for r in rec["readings"]}


def spooled_truth(spool_dir: Path) -> tuple[set[tuple[str, int]], int]:
    """(every reading a box ever numbered, readings still in the spools), from the spool files.

    ``seq`` is assigned in the transaction that stores the reading, so 1..last.seq is exactly
    the set of readings the box took.
    """
    spools = inspect_dir(spool_dir)
    expected = {(device_id, s) for device_id, f in spools.items() for s in range(1, f.last.seq + 1)}
    return expected, sum(f.unacked for f in spools.values())


@dataclass
class Processes:
    """Start the bridge and `device simulate` as real processes; stop them by PID."""

    tmp_path: Path
    cert_dir: Path
    kinesis: KinesisMock
    started: list[subprocess.Popen[bytes]]

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_KINESIS": self.kinesis.endpoint,
            "WATTSTREAM_BRIDGE_RECONNECT_MAX_S": "2",
            "WATTSTREAM_BRIDGE_DEAD_LETTER_DIR": str(self.dead_letter_dir),
        }

    @property
    def dead_letter_dir(self) -> Path:
        return self.tmp_path / "bridge-dead-letter"

    def dead_letters(self) -> list[dict]:
        """Every line of the bridge's dead-letter files."""
        return [
            json.loads(line)
            for path in sorted(self.dead_letter_dir.glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / log_name, "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=self._env(), stdout=log, stderr=log)
        log.close()
        self.started.append(proc)
        return proc

    def bridge(self, port: int, stream: str, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start the bridge; with ``wait``, return once its subscription stands."""
        log = self.tmp_path / "bridge.log"
        before = log.read_text().count("bridge_subscribed") if log.exists() else 0
        args = ["-m", "bridge", "--port", str(port), "--cert-dir", str(self.cert_dir), "--stream-name", stream]
        proc = self._spawn(args, "bridge.log")
        if wait and not wait_for(lambda: log.read_text().count("bridge_subscribed") > before, 20, 0.1):
            raise AssertionError(f"bridge did not subscribe:\n{log.read_text()[-3000:]}")
        return proc

    def simulate(self, port: int, spool_dir: Path, *, devices: int, duration_s: float, extra: list[str] | None = None):
        args = [
            "-m",
            "device",
            "simulate",
            "--devices",
            str(devices),
            "--duration-s",
            str(duration_s),
            "--interval-s",
            "0.1",
            "--max-wait-s",
            "0.5",
            "--max-readings",
            "20",
            "--port",
            str(port),
            "--cert-dir",
            str(self.cert_dir),
            "--spool-dir",
            str(spool_dir),
            "--reconnect-max-s",
            "2",
            "--drain-s",
            "40",
            "--no-issue-certs",
            *(extra or []),
        ]
        return self._spawn(args, "simulate.log")


@pytest.fixture
def procs(tmp_path: Path, cert_dir: Path, kinesis: KinesisMock) -> Iterator[Processes]:
    p = Processes(tmp_path, cert_dir, kinesis, [])
    yield p
    for proc in p.started:
        broker_lib.stop_process(proc, timeout_s=5)
