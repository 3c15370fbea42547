"""Start and stop a local Mosquitto with wattstream's TLS listener and ACL.

The broker is not a service of the machine: tests and demos start one with ``start()``, which
renders ``devstack/resources/mosquitto/mosquitto.conf.template`` and the ACL into a working folder with
absolute paths, runs ``mosquitto -c`` and waits until the port accepts connections. ``stop()``
ends exactly that process (by its PID, SIGTERM first so the broker saves its persistent state).

Restarting with the same working folder keeps the broker's persistence file, so the bridge's
persistent session and its queued messages survive, as they do in a real broker restart.
``reload()`` sends SIGHUP, on which Mosquitto reads the ACL and the CRL again.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.net import free_port, wait_for_port
from readings.errors import WattstreamError

TEMPLATE_DIR = Path(__file__).resolve().parent / "resources" / "mosquitto"
DEFAULT_START_TIMEOUT_S = 10.0


class BrokerError(WattstreamError):
    """Mosquitto could not be started or stopped."""


@dataclass(slots=True)
class Broker:
    """A running Mosquitto: its process, port and working folder."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    work_dir: Path
    cert_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_file(self) -> Path:
        return self.work_dir / "mosquitto.log"


def mosquitto_binary() -> str | None:
    """``mosquitto`` on PATH or in /usr/sbin (where Debian installs it), else None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def render_config(work_dir: Path, cert_dir: Path, *, port: int, host: str = "127.0.0.1") -> Path:
    """Write ``mosquitto.conf`` and ``acl`` into ``work_dir``; returns the config path.

    ``cert_dir`` is a folder made by ``wattstream certs init``: ``ca.crt``, ``ca.crl``,
    ``server.crt`` and ``server.key`` (the bridge imports nothing of device/, so the names are
    repeated here). Raises ``BrokerError`` when the CRL is missing: Mosquitto would not start.
    """
    crl_file = cert_dir.resolve() / "ca.crl"
    if not crl_file.exists():
        raise BrokerError(f"missing {crl_file}: run `wattstream certs init --dir {cert_dir}` (it keeps the CA)")
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "data").mkdir(exist_ok=True)
    cert_dir = cert_dir.resolve()
    acl_file = work_dir / "acl"
    shutil.copyfile(TEMPLATE_DIR / "acl", acl_file)
    # Started as root, Mosquitto drops to the "mosquitto" user and could no longer read our
    # 0600 keys; it keeps the identity we name here.
    user = getpass.getuser()
    template = string.Template((TEMPLATE_DIR / "mosquitto.conf.template").read_text())
    text = template.substitute(
        user_line=f"user {user}",
        port=port,
        bind_address=host,
        cafile=cert_dir / "ca.crt",
        crlfile=crl_file,
        certfile=cert_dir / "server.crt",
        keyfile=cert_dir / "server.key",
        acl_file=acl_file,
        persistence_dir=work_dir / "data",
        log_file=work_dir / "mosquitto.log",
    )
    conf = work_dir / "mosquitto.conf"
    conf.write_text(text)
    return conf


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        wait_for_port(host, port, timeout_s, alive=lambda: process.poll() is None)
    except TimeoutError as exc:
        raise BrokerError(f"mosquitto did not listen on {host}:{port}: {exc}") from None


def start(
    work_dir: Path,
    cert_dir: Path,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> Broker:
    """Render the config into ``work_dir`` and start Mosquitto; returns once the port listens."""
    binary = mosquitto_binary()
    if binary is None:
        raise BrokerError("mosquitto is not installed (Debian: apt-get install -y mosquitto)")
    port = port or free_port(host)
    conf = render_config(work_dir, cert_dir, port=port, host=host)
    stderr = open(work_dir / "mosquitto.stderr", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=stderr, stderr=stderr, start_new_session=True)
    stderr.close()
    try:
        _wait_for_port(host, port, process, timeout_s)
    except BrokerError:
        stop_process(process)
        log = (work_dir / "mosquitto.log").read_text(errors="replace") if (work_dir / "mosquitto.log").exists() else ""
        raise BrokerError(f"mosquitto failed to start; log tail:\n{log[-2000:]}") from None
    return Broker(process, host, port, work_dir.resolve(), cert_dir.resolve())


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0, kill: bool = False) -> None:
    """End one process by PID: SIGTERM (or SIGKILL when ``kill``), then SIGKILL after a timeout."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


def stop(broker: Broker, *, kill: bool = False) -> None:
    """Stop the broker started by ``start``; SIGTERM lets it write its persistence file."""
    stop_process(broker.process, kill=kill)


def reload(broker: Broker) -> None:
    """SIGHUP: Mosquitto reads the ACL and the CRL again (new connections see them; open ones stay)."""
    os.kill(broker.pid, signal.SIGHUP)


def restart(broker: Broker, *, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> Broker:
    """Start a stopped broker again on the same port with the same state folder."""
    return start(broker.work_dir, broker.cert_dir, port=broker.port, host=broker.host, timeout_s=timeout_s)
