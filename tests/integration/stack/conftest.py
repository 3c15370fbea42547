"""Fixtures of the stack tests: child processes stopped by their PID, free ports, Mosquitto.

The emulators (``aws_env``) and the ``pipeline`` come from tests/integration/conftest.py.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.stack.compose import REPO, volume_mounts

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration/stack" in str(item.path):
            item.add_marker(pytest.mark.integration)


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Processes:
    """Processes started by one test, each in its own session; stopped by PID, never by name."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Started:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd or REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        started = Started(name, proc, log)
        self.started.append(started)
        return started

    def stop(self, started: Started, timeout_s: float = 60.0) -> int:
        """SIGTERM to the PID (as `docker stop` does), SIGKILL of its own group after a timeout."""
        proc = started.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # The process was the leader of its own session: end anything it left behind there.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def stop_all(self) -> None:
        for started in reversed(self.started):
            self.stop(started, timeout_s=20)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def render_docker_mosquitto_conf(service: dict, volumes_root: Path, port: int, out: Path) -> Path:
    """devstack/resources/mosquitto/mosquitto.docker.conf with the service's mounts moved onto this machine.

    The listener moves to 127.0.0.1:<port>, and a ``user`` line keeps our identity (started as
    root, Mosquitto would switch to its own user, which cannot read the 0600 keys).
    """
    mapping = []
    for source, target in volume_mounts(service):
        host = (REPO / source).resolve() if source.startswith((".", "/")) else volumes_root / source
        host.mkdir(parents=True, exist_ok=True)
        mapping.append((target.rstrip("/"), host))
    conf_path = next(a for a in service["command"] if a.endswith(".conf"))
    source_conf = next(
        host / Path(conf_path).relative_to(target) for target, host in mapping if conf_path.startswith(target + "/")
    )
    lines = [f"user {getpass.getuser()}"]
    for line in source_conf.read_text().splitlines():
        if line.startswith("listener "):
            line = f"listener {port} 127.0.0.1"
        for target, host in sorted(mapping, key=lambda m: len(m[0]), reverse=True):
            line = line.replace(f" {target}/", f" {host}/")
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out
