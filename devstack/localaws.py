"""Local AWS without Docker: kinesis-mock for Kinesis, moto server for the rest.

kinesis-mock (npm ``kinesis-local``) speaks HTTP/2 and CBOR like the real service, which the
KCL's Java client needs, and hands out realistic 56-digit sequence numbers. moto server
serves DynamoDB, S3, CloudWatch and SNS. LocalStack under docker compose replaces both; every
client here finds its endpoint in the standard ``AWS_ENDPOINT_URL*`` variables either way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.net import free_port, port_free, wait_for_port
from readings.errors import ConfigError

__all__ = [
    "LocalAws",
    "free_port",
    "kinesis_mock",
    "kinesis_mock_bin",
    "moto_server",
    "start_kinesis_mock",
    "wait_for_port",
]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
DEFAULT_KINESIS_PORT = 4568


def kinesis_mock_bin() -> str:
    for candidate in (
        ROOT / "node_modules" / ".bin" / "kinesis-local",
        Path.cwd() / "node_modules" / ".bin" / "kinesis-local",
    ):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("kinesis-local")
    if not found:
        raise ConfigError("kinesis-local not found: run `make install` (npm ci installs it)")
    return found


@dataclass
class LocalAws:
    """The two emulators as child processes. Use as a context manager or call start/stop."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    kinesis_port: int = DEFAULT_KINESIS_PORT
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def env(self) -> dict[str, str]:
        """The variables that point boto3 and the KCL at these emulators."""
        return {
            "AWS_ENDPOINT_URL": f"http://{self.host}:{self.port}",
            "AWS_ENDPOINT_URL_KINESIS": f"http://{self.host}:{self.kinesis_port}",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        }

    def _out(self, name: str):  # noqa: ANN202
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def start(self, timeout_s: float = 90.0) -> LocalAws:
        for port in (self.port, self.kinesis_port):
            if not port_free(self.host, port):
                raise ConfigError(f"{self.host}:{port} is taken: stop what runs there or choose other ports")
        self._procs.append(start_kinesis_mock(self.host, self.kinesis_port, self._out("kinesis")))
        moto = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        self._procs.append(
            subprocess.Popen(moto, stdout=self._out("moto"), stderr=subprocess.STDOUT, start_new_session=True)
        )
        try:
            for port in (self.kinesis_port, self.port):
                wait_for_port(self.host, port, timeout_s, alive=self.alive)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            _end(proc)
        self._procs.clear()

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_kinesis_mock(host: str, port: int, out: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """kinesis-mock listening on ``host:port`` (plain HTTP), streams created at once."""
    env = dict(
        os.environ,
        KINESIS_MOCK_PLAIN_PORT=str(port),
        KINESIS_MOCK_TLS_PORT=str(free_port(host)),
        LOG_LEVEL=os.environ.get("KINESIS_MOCK_LOG_LEVEL", "WARN"),
        CREATE_STREAM_DURATION="0ms",
        DELETE_STREAM_DURATION="0ms",
        UPDATE_STREAM_DURATION="0ms",
        SHARD_LIMIT="1000",
        AWS_ACCOUNT_ID="000000000000",
    )
    binary = Path(kinesis_mock_bin()).resolve()
    return subprocess.Popen(
        ["node", str(binary)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        # kinesis-mock reads its server.json from the working directory.
        cwd=binary.parent,
        start_new_session=True,
    )


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def kinesis_mock(host: str = DEFAULT_HOST, log: Path | None = None, timeout_s: float = 60.0) -> Iterator[str]:
    """kinesis-mock alone on a free port; yields its URL."""
    port = free_port(host)
    with open(log or os.devnull, "ab") as out:
        server = start_kinesis_mock(host, port, out)
    try:
        wait_for_port(host, port, timeout_s, alive=lambda: server.poll() is None)
        yield f"http://{host}:{port}"
    finally:
        _end(server)


@contextmanager
def moto_server(host: str = DEFAULT_HOST, timeout_s: float = 60.0) -> Iterator[str]:
    """moto server alone on a free port (DynamoDB, S3, ... without Kinesis); yields its URL."""
    port = free_port(host)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(host, port, timeout_s, alive=lambda: server.poll() is None)
        yield f"http://{host}:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
