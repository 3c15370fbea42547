"""``wattstream demo``: the whole path on local defaults, then the figures.

Starts the AWS emulators (kinesis-mock, moto) and creates the stream, tables and bucket; makes
a local CA and one certificate per box; starts Mosquitto (mutual TLS + ACL), the bridge (the
IoT Core topic rule), the consumer (KCL MultiLangDaemon) and a fleet of simulated boxes that
publish over MQTT for ``duration_s``. Then it waits until every acknowledged reading is
stored, compares each box's kWh as stored with what its meter measured, prints the write
operations made versus one per reading, and stops everything it started, also on Ctrl-C,
SIGTERM or a failure.

The metered truth never comes from the consumer: each box's spool says which readings it took
and its last register, and the raw stream (plain GetRecords, deduplicated on (device_id, seq))
holds the first register.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from consumer.settings import Settings
from devstack.localaws import LocalAws, port_free
from devstack.report import energy_by_device, metric_sum, samples_by_device, scan_aggregates, scrape, write_summary
from devstack.stack import (
    ChildProcess,
    ConsumerProcess,
    DeviceTruth,
    Simulation,
    fleet_truth,
    issue_certificates,
    read_spools,
    read_stream,
    start_bridge,
    start_serve,
    wait_until,
)
from readings.errors import WattstreamError

TOLERANCE_WH = 0.01
MQTT_PORT = 8883
# Simulated boxes read their meter every 10 simulated seconds and their clocks run 10x faster
# than the wall clock: one reading per box and real second, 20 simulated minutes in two real
# ones. A message closes after 2 simulated minutes (12 readings), or at 50 readings / 5 KB.
INTERVAL_S = 10.0
SPEED = 10.0
MAX_WAIT_S = 120.0
DRAIN_S = 60.0
SERVE_PORT = 8080


def _say(text: str) -> None:
    click.echo(text, err=True)


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop every child we started


def run_demo(
    devices: int,
    duration_s: float,
    max_age_s: float,
    work_dir: Path = Path(".local/demo"),
    *,
    serve: bool = False,
    serve_s: float | None = None,
) -> int:
    """Run the demo; 0 when every box's stored kWh matches its meter.

    With ``serve``, the fleet page and the API stay up over the demo's data for ``serve_s``
    seconds, or until Ctrl-C when that is None and a person is at the terminal.
    """
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("spool", "mosquitto", "logs", "metrics", "consumer"):
        shutil.rmtree(work_dir / stale, ignore_errors=True)  # every run starts from fresh boxes
    logs = work_dir / "logs"
    from readings.logs import configure

    configure("WARNING")  # the demo's own library logs: warnings only, JSON on stderr
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    saved_env = dict(os.environ)
    aws = LocalAws(log_dir=logs)
    broker = bridge = consumer = sim = page = None
    try:
        _say("starting kinesis-mock and moto ...")
        aws.start()
        env = {
            **aws.env,
            "WATTSTREAM_MAX_AGE_S": str(max_age_s),
            "WATTSTREAM_WORK_DIR": str(work_dir / "consumer"),
            "WATTSTREAM_METRICS_DIR": str(work_dir / "metrics"),
            "WATTSTREAM_FAILOVER_TIME_MS": "5000",
            "WATTSTREAM_KCL_EXTRA_PROPERTIES": os.environ.get(
                "WATTSTREAM_KCL_EXTRA_PROPERTIES",
                '{"leaseAssignmentIntervalMillis": "1000", "shardSyncIntervalMillis": "1000"}',
            ),
        }
        os.environ.update(env)
        settings = Settings()
        from devstack.provision import provision

        # The consumer publishes alert events to the local topic.
        env["WATTSTREAM_ALERTS_TOPIC_ARN"] = os.environ["WATTSTREAM_ALERTS_TOPIC_ARN"] = provision(settings)

        things = [f"box-{i:04d}" for i in range(1, devices + 1)]
        cert_dir = issue_certificates(work_dir / "certs", things)
        from devstack import broker as broker_lib

        port = MQTT_PORT if port_free("127.0.0.1", MQTT_PORT) else broker_lib.free_port()
        broker = broker_lib.start(work_dir / "mosquitto", cert_dir, port=port)
        _say(f"Mosquitto (mutual TLS + ACL) on :{port}, certificates in {cert_dir}")
        bridge = start_bridge(port, cert_dir, settings.stream_name, env, logs / "bridge.log")
        _say(f"starting the bridge and the consumer (logs in {logs}) ...")
        consumer = ConsumerProcess(env, logs / "consumer.log", settings.metrics_port).start()

        sim = Simulation(
            devices,
            duration_s,
            port,
            cert_dir,
            work_dir / "spool",
            logs,
            interval_s=INTERVAL_S,
            speed=SPEED,
            max_wait_s=MAX_WAIT_S,
            drain_s=DRAIN_S,
        ).start()
        _say(
            f"{devices} simulated boxes publish over MQTT for {duration_s:.0f} s "
            f"(a reading every {INTERVAL_S:.0f} simulated s, clocks {SPEED:.0f}x fast) ..."
        )
        fleet = sim.wait()
        _say(
            f"boxes acknowledged {fleet['readings_acked']} readings in {fleet['messages_acked']} messages "
            f"({fleet['readings_per_message']} readings, {fleet['mean_message_bytes']:.0f} B per message); "
            f"{fleet['spooled_left']} left in the spools"
        )

        spools = read_spools(work_dir / "spool")
        found: dict[str, Any] = {}

        def on_stream() -> bool:
            found["truth"], found["problems"] = fleet_truth(
                spools, read_stream(settings.client("kinesis"), settings.stream_name)
            )
            return not found["problems"]

        with contextlib.suppress(TimeoutError):
            wait_until(on_stream, 60, 1.0, "every acknowledged reading on the stream")
        truth: dict[str, DeviceTruth] = found["truth"]
        problems: list[str] = found["problems"]
        for problem in problems[:20]:
            _say(f"  ! {problem}")
        expected = sum(t.readings for t in truth.values())
        _say(f"waiting until the consumer stored all {expected} readings ...")
        try:
            wait_until(
                lambda: metric_sum(scrape(consumer.metrics_url), "wattstream_readings_stored_total") >= expected,
                timeout_s=max_age_s * 3 + 120,
                interval_s=1.0,
                what="every reading stored",
            )
        except TimeoutError as exc:
            _say(f"  ! {exc}")
        summary = write_summary(scrape(consumer.metrics_url))
        consumer.stop()

        items = scan_aggregates(settings.client("dynamodb"), settings.aggregates_table)
        bad = _print(truth, energy_by_device(items), samples_by_device(items), summary)
        code = 1 if bad or problems or not truth else 0
        query = (
            " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("AWS_"))
            + f" {Path(sys.executable).parent / 'wattstream'} query {min(truth) if truth else things[0]}"
            + " --every 15m --format table"
        )
        if serve:
            port = SERVE_PORT if port_free("127.0.0.1", SERVE_PORT) else broker_lib.free_port()
            page, url = start_serve(env, logs / "serve.log", port=port)
            click.echo(f"\nthe fleet page: {url}   (API docs: {url}docs)")
            click.echo(f"a box's quarters today, from another terminal:\n  {query}")
            if serve_s is None and not sys.stdin.isatty():
                serve_s = 0.0
                _say("standard input is not a terminal: stopping now (--serve-s N keeps the page up N seconds)")
            else:
                click.echo("Ctrl-C stops the page and the emulators.")
            assert page.proc is not None
            with contextlib.suppress(KeyboardInterrupt, subprocess.TimeoutExpired):
                page.proc.wait(timeout=serve_s)  # the finally below stops everything
        return code
    except (WattstreamError, RuntimeError, TimeoutError) as exc:
        _say(f"demo failed: {exc}")
        return 2
    finally:
        signal.signal(signal.SIGTERM, _raise_on_sigterm)  # a second SIGTERM must not skip the cleanup
        _stop_all(sim, bridge, consumer, broker, aws, page)
        signal.signal(signal.SIGTERM, previous_sigterm)
        os.environ.clear()
        os.environ.update(saved_env)


def _stop_all(
    sim: Simulation | None,
    bridge: ChildProcess | None,
    consumer: ConsumerProcess | None,
    broker: Any,
    aws: LocalAws,
    page: ChildProcess | None = None,
) -> None:
    """Stop what was started, in order, each by its PID; one failure does not skip the rest."""
    steps = [
        ("fleet page", lambda: page.stop() if page else None),
        ("boxes", lambda: sim.child.stop(timeout_s=15) if sim and sim.child else None),
        ("bridge", lambda: bridge.stop() if bridge else None),
        ("consumer", lambda: consumer.stop() if consumer else None),
        ("Mosquitto", lambda: _stop_broker(broker)),
        ("emulators", aws.stop),
    ]
    for name, step in steps:
        for _ in range(3):  # an impatient second Ctrl-C only restarts the current step
            try:
                step()
                break
            except KeyboardInterrupt:
                continue
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                _say(f"could not stop the {name}: {exc}")
                break
    _say("stopped everything the demo started")


def _stop_broker(broker: Any) -> None:
    if broker is not None:
        from devstack import broker as broker_lib

        broker_lib.stop(broker)


def _print(
    truth: dict[str, DeviceTruth], energy: dict[str, float], samples: dict[str, int], summary: dict[str, float]
) -> int:
    click.echo(f"\n{'device':<12}{'kWh stored':>12}{'kWh metered':>13}{'samples':>9}{'readings':>10}  check")
    bad = 0
    for device_id, t in sorted(truth.items()):
        stored_wh = energy.get(device_id, 0.0)
        ok = abs(stored_wh - t.energy_wh) <= TOLERANCE_WH and samples.get(device_id) == t.readings
        bad += not ok
        click.echo(
            f"{device_id:<12}{stored_wh / 1000:>12.4f}{t.energy_wh / 1000:>13.4f}"
            f"{samples.get(device_id, 0):>9}{t.readings:>10}  {'ok' if ok else 'MISMATCH'}"
        )
    extra = sorted(set(energy) - set(truth))
    for device_id in extra:
        bad += 1
        click.echo(
            f"{device_id:<12}{energy[device_id] / 1000:>12.4f}{'-':>13}{samples.get(device_id, 0):>9}"
            f"{'-':>10}  NOT A BOX"
        )
    readings = summary["readings_stored"]
    click.echo(
        f"\ntotal kWh stored      {sum(energy.values()) / 1000:>10.3f}   "
        f"metered {sum(t.energy_wh for t in truth.values()) / 1000:.3f}"
    )
    click.echo(f"readings stored       {readings:>10.0f}")
    click.echo(f"records (messages)    {summary['records']:>10.0f}")
    click.echo(f"batches flushed       {summary['batches']:>10.0f}")
    click.echo(f"DynamoDB item writes  {summary['dynamodb_writes']:>10.0f}")
    click.echo(f"S3 puts               {summary['s3_puts']:>10.0f}")
    click.echo(f"KCL checkpoints       {summary['checkpoints']:>10.0f}")
    click.echo(
        f"write operations      {summary['write_operations']:>10.0f}   "
        f"(one per reading: {readings:.0f}; {summary['reduction_vs_one_per_reading']:.1f}x fewer, "
        f"{summary['writes_per_1000_readings']:.1f} per 1,000 readings)"
    )
    click.echo(
        f"\n{len(truth) - bad + len(extra)}/{len(truth)} devices match their meters" + ("" if not bad else " - FAILED")
    )
    return bad
