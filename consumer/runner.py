"""``wattstream consume``: the metrics endpoint plus the MultiLangDaemon as a child process.

SIGTERM and SIGINT are passed on to the daemon, whose shutdown hook asks every record
processor to flush and checkpoint (``shutdownGraceMillis``) before it exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import structlog

from consumer import daemon
from consumer.settings import Settings

log = structlog.get_logger("wattstream.consume")


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

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        log.info("stopping", signal=signal.Signals(signum).name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = proc.wait()
    log.info("daemon_exited", code=code)
    # The JVM exits with 128 + SIGTERM after a shutdown we asked for: that is a clean stop.
    return 0 if stopping and code in (0, 128 + signal.SIGTERM) else code


def _prepare_metrics_dir(path: Path) -> Path:
    """An empty folder for the processors' metric files (old files would resurrect old counts)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path.resolve()
