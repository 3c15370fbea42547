"""``wattstream consume``: the metrics endpoint plus the MultiLangDaemon as a child process.

SIGTERM and SIGINT are passed on to the daemon once, whose shutdown hook asks every record
processor to flush and checkpoint (``shutdownGraceMillis``) before it exits. The record
processors ignore both signals, so one sent to the whole process group (Ctrl-C, ``kill --
-PGID``) still ends in that last flush.

With ``WATTSTREAM_WORKER_ID=slot`` a worker slot (``consumer.slots``) is claimed before the
daemon starts and released after it exited. Should the slot be lost, the daemon gets SIGTERM
and is killed when the claim runs out, and ``consume`` exits non-zero: two workers under one
id must never run together.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from consumer import daemon, slots
from consumer.settings import Settings

log = structlog.get_logger("wattstream.consume")

STOP_MARGIN_S = 10.0
"""How long past the shutdown grace the daemon may take to exit before it is killed."""


def run(settings: Settings) -> int:
    metrics_dir = _prepare_metrics_dir(Path(settings.metrics_dir))
    # prometheus-client reads the variable when the metrics are created: set it first.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    slot = None
    if settings.worker_id == slots.SLOT:
        ttl_s = settings.worker_slot_ttl_s
        slot = slots.claim(slots.client(settings.region, ttl_s), settings.state_table, ttl_s).start()
        settings = settings.model_copy(update={"worker_id": slot.worker_id})
    try:
        return _run(settings, metrics_dir, slot)
    finally:
        if slot is not None:
            slot.release()


def _run(settings: Settings, metrics_dir: Path, slot: slots.WorkerSlot | None) -> int:
    from consumer import metrics  # only now: run() has set PROMETHEUS_MULTIPROC_DIR

    work = settings.work_dir.resolve()
    props = daemon.write_properties(settings, work / "consumer.properties")
    cmd = daemon.command(settings, props)
    env = daemon.environment(settings, metrics_dir)
    metrics.serve(settings.metrics_port)
    log.info("daemon_starting", properties=str(props), stream=settings.stream_name, metrics_port=settings.metrics_port)
    proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr)

    stop_deadline: float | None = None
    lost: slots.Lost | None = None

    def stop(by: float) -> None:
        # One SIGTERM to the daemon, however many reasons arrive (Ctrl-C twice, a group
        # signal that reached the daemon too, a lost slot): its shutdown hook asks every
        # processor for the last flush and checkpoint; the earliest deadline holds.
        nonlocal stop_deadline
        if stop_deadline is None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            stop_deadline = by
        elif stop_deadline is not None:
            stop_deadline = min(stop_deadline, by)

    def forward(signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name, forwarded=stop_deadline is None)
        stop(time.monotonic() + settings.shutdown_grace_ms / 1000 + STOP_MARGIN_S)

    def watch_slot() -> None:
        # Polled here, not acted on from the heartbeat thread: the daemon is handled by the
        # main thread only, and a heartbeat stuck in a request cannot delay the stop.
        nonlocal lost
        if slot is not None and lost is None and (lost := slot.lost()) is not None:
            log.error("stopping", reason=f"worker slot {lost.reason}", worker_id=settings.worker_id)
            stop(lost.stop_by)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = _wait(proc, lambda: stop_deadline, watch_slot)
    log.info("daemon_exited", code=code)
    # The JVM exits with 128 + the signal after a shutdown we asked for (or one a group
    # signal reached it with): that is a clean stop.
    clean = (0, 128 + signal.SIGTERM, 128 + signal.SIGINT)
    if lost is not None:
        return 1 if code in clean else code
    return 0 if stop_deadline is not None and code in clean else code


def _wait(
    proc: subprocess.Popen[bytes], deadline: Callable[[], float | None], tick: Callable[[], None] = lambda: None
) -> int:
    """The daemon's exit code; ``tick`` runs every half second while it runs, and a daemon
    still there past the stop deadline is killed."""
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            tick()
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
