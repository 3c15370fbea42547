"""``wattstream demo``: the main job end to end on local defaults, then the figures.

Starts the emulators, creates the stream/tables/bucket, runs the consumer, lets a simulated
fleet send live readings, waits until every reading is stored, checks each device's energy
against its simulated meter, prints the write operations versus one per reading, and stops
everything it started.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from consumer.loadgen import Fleet, run_live
from consumer.localaws import LocalAws
from consumer.report import energy_by_device, metric_sum, samples_by_device, scan_aggregates, scrape, write_summary
from consumer.settings import Settings
from consumer.stack import ConsumerProcess, wait_until

TOLERANCE_WH = 0.01


def run_demo(devices: int, duration_s: float, max_age_s: float, work_dir: Path = Path(".local/demo")) -> int:
    work_dir.mkdir(parents=True, exist_ok=True)
    aws = LocalAws(log_dir=work_dir)
    click.echo("starting kinesis-mock and moto ...", err=True)
    aws.start()
    consumer: ConsumerProcess | None = None
    try:
        os.environ.update(aws.env)
        env = {**aws.env, "WATTSTREAM_MAX_AGE_S": str(max_age_s), "WATTSTREAM_WORK_DIR": str(work_dir),
               "WATTSTREAM_METRICS_DIR": str(work_dir / "metrics"), "WATTSTREAM_FAILOVER_TIME_MS": "5000"}
        os.environ.update(env)
        settings = Settings()
        from consumer.provision import provision

        provision(settings)
        click.echo(f"starting the consumer (log: {work_dir / 'consumer.log'}) ...", err=True)
        consumer = ConsumerProcess(env, work_dir / "consumer.log", settings.metrics_port).start()

        fleet = Fleet(devices)
        click.echo(f"{devices} simulated boxes send a reading a second for {duration_s:.0f} s ...", err=True)
        started = time.monotonic()
        run_live(settings.client("kinesis"), settings.stream_name, fleet, duration_s, readings_per_message=5)
        truth = fleet.truth()
        produced = sum(n for n, _ in truth.values())
        click.echo(f"sent {produced} readings in {time.monotonic() - started:.0f} s; waiting for the last flush ...",
                   err=True)
        wait_until(
            lambda: metric_sum(scrape(consumer.metrics_url), "wattstream_readings_stored_total") >= produced,
            timeout_s=max_age_s * 3 + 120,
            what="every reading stored",
        )
        summary = write_summary(scrape(consumer.metrics_url))
        consumer.stop()

        items = scan_aggregates(settings.client("dynamodb"), settings.aggregates_table)
        energy, samples = energy_by_device(items), samples_by_device(items)
        return _print(truth, energy, samples, summary)
    finally:
        if consumer is not None:
            consumer.stop()
        aws.stop()


def _print(truth: dict[str, tuple[int, float]], energy: dict[str, float], samples: dict[str, int],
           summary: dict[str, float]) -> int:
    click.echo(f"\n{'device':<12}{'kWh stored':>12}{'kWh metered':>13}{'samples':>9}  check")
    bad = 0
    for device_id, (readings, true_wh) in sorted(truth.items()):
        stored_wh = energy.get(device_id, 0.0)
        ok = abs(stored_wh - true_wh) <= TOLERANCE_WH and samples.get(device_id) == readings
        bad += not ok
        click.echo(f"{device_id:<12}{stored_wh / 1000:>12.4f}{true_wh / 1000:>13.4f}{samples.get(device_id, 0):>9}  "
                   f"{'ok' if ok else 'MISMATCH'}")
    readings = summary["readings_stored"]
    click.echo(f"\nreadings stored       {readings:>10.0f}")
    click.echo(f"batches flushed       {summary['batches']:>10.0f}")
    click.echo(f"DynamoDB item writes  {summary['dynamodb_writes']:>10.0f}")
    click.echo(f"S3 puts               {summary['s3_puts']:>10.0f}")
    click.echo(f"KCL checkpoints       {summary['checkpoints']:>10.0f}")
    click.echo(f"write operations      {summary['write_operations']:>10.0f}   "
               f"(one per reading: {readings:.0f}; {summary['reduction_vs_one_per_reading']:.1f}x fewer, "
               f"{summary['writes_per_1000_readings']:.1f} per 1,000 readings)")
    click.echo(f"\n{len(truth) - bad}/{len(truth)} devices match their meters" + ("" if not bad else " - FAILED"))
    return 1 if bad else 0
