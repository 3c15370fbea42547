"""A whole local pipeline as child processes: the emulators and consumers. Demo and tests.

Every consumer runs in its own process group, so ``kill`` takes down the daemon and all its
record processors at once, like a container that dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


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
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def wait_until(predicate, timeout_s: float, interval_s: float = 0.5, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached in {timeout_s} s")
