"""``wattstream consume``: the metrics endpoint plus the MultiLangDaemon as a child process.

SIGTERM and SIGINT are passed on to the daemon once, whose shutdown hook asks every record
processor to flush and checkpoint (``shutdownGraceMillis``) before it exits. The record
processors ignore both signals, so one sent to the whole process group (Ctrl-C, ``kill --
-PGID``) still ends in that last flush.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import structlog

from consumer import daemon
from consumer.settings import Settings

log = structlog.get_logger("wattstream.consume")

STOP_MARGIN_S = 10.0
"""How long past the shutdown grace the daemon may take to exit before it is killed."""


def run(settings: Settings) -> int:
    metrics_dir = _prepare_metrics_dir(Path(settings.metrics_dir))
    # prometheus-client reads the variable when the metrics are created: set it first.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    from consumer import metrics

    work = settings.work_dir.resolve()
    props = daemon.write_properties(settings, work / "consumer.properties")
    cmd = daemon.command(settings, props)
    env = daemon.environment(settings, metrics_dir)
    metrics.serve(settings.metrics_port)
    log.info("daemon_starting", properties=str(props), stream=settings.stream_name, metrics_port=settings.metrics_port)
    proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr)

    stop_deadline: float | None = None

    def forward(signum: int, _frame: object) -> None:
        # One SIGTERM to the daemon, however many signals arrive (Ctrl-C twice, a group
        # signal that reached the daemon too): its shutdown hook asks every processor for the
        # last flush and checkpoint within the grace period.
        nonlocal stop_deadline
        log.info("stopping", signal=signal.Signals(signum).name, forwarded=stop_deadline is None)
        if stop_deadline is None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            stop_deadline = time.monotonic() + settings.shutdown_grace_ms / 1000 + STOP_MARGIN_S

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = _wait(proc, lambda: stop_deadline)
    log.info("daemon_exited", code=code)
    # The JVM exits with 128 + the signal after a shutdown we asked for (or one a group
    # signal reached it with): that is a clean stop.
    clean = (0, 128 + signal.SIGTERM, 128 + signal.SIGINT)
    return 0 if stop_deadline is not None and code in clean else code


def _wait(proc: subprocess.Popen[bytes], deadline: Callable[[], float | None]) -> int:
    """The daemon's exit code; a daemon still there past the stop deadline is killed."""
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            due = deadline()
            if due is not None and time.monotonic() > due:
                log.error("daemon_stop_timeout")
                proc.kill()


def _prepare_metrics_dir(path: Path) -> Path:
    """An empty folder for the processors' metric files (old files would resurrect old counts)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path.resolve()
