"""The local dev kit's commands: local-aws, init, produce, report, demo."""

from __future__ import annotations

import json
import signal
import sys
import threading

import click

from consumer.commands import _settings

LOCAL_ENV_HINT = """\b
Point other shells at the emulators with:
  export AWS_ENDPOINT_URL=http://{host}:{port}
  export AWS_ENDPOINT_URL_KINESIS=http://{host}:{kport}
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
"""


@click.command("local-aws")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4566, show_default=True, help="moto server: DynamoDB, S3, CloudWatch, SNS.")
@click.option("--kinesis-port", default=4568, show_default=True, help="kinesis-mock (plain HTTP/2).")
@click.option("--log-dir", type=click.Path(file_okay=False), default=None, help="Keep the emulators' logs here.")
def local_aws(host: str, port: int, kinesis_port: int, log_dir: str | None) -> None:
    """Run the local AWS emulators in the foreground until Ctrl-C.

    \b
    Examples:
      wattstream local-aws
      wattstream local-aws --port 5566 --kinesis-port 5568 --log-dir .local/logs
    """
    from pathlib import Path

    from devstack.localaws import LocalAws

    aws = LocalAws(host, port, kinesis_port, Path(log_dir) if log_dir else None).start()
    click.echo(f"kinesis-mock on {host}:{kinesis_port}, moto on {host}:{port}", err=True)
    click.echo(LOCAL_ENV_HINT.format(host=host, port=port, kport=kinesis_port).replace("\b\n", ""), err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and aws.alive():
            stop.wait(1)
    except KeyboardInterrupt:
        pass
    finally:
        aws.stop()


@click.command()
def init() -> None:
    """Create the stream, the tables, the bucket and the alert topic (idempotent).

    Prints `export WATTSTREAM_ALERTS_TOPIC_ARN=...` for the consumer.

    \b
    Examples:
      wattstream init
      eval "$(wattstream init)"
      WATTSTREAM_SHARD_COUNT=4 wattstream init
    """
    from devstack.provision import provision

    settings = _settings()
    topic_arn = provision(settings)
    click.echo(
        f"stream {settings.stream_name} ({settings.shard_count} shards), tables {settings.aggregates_table} and "
        f"{settings.state_table}, bucket {settings.raw_bucket}, alert topic {topic_arn}: ready",
        err=True,
    )
    # On stdout, for `eval "$(wattstream init)"`: the consumer publishes alerts to this topic.
    click.echo(f"export WATTSTREAM_ALERTS_TOPIC_ARN={topic_arn}")


@click.command()
@click.option("--devices", default=50, show_default=True, help="Virtual boxes.")
@click.option("--duration-s", default=120.0, show_default=True, help="Live mode: how long to send.")
@click.option("--interval-s", default=1.0, show_default=True, help="Meter reading interval.")
@click.option("--readings-per-message", default=5, show_default=True, help="Edge batch: readings per message.")
@click.option("--backfill", type=int, default=None, help="Send this many readings per device at once, ending now.")
@click.option("--seed", default=7, show_default=True)
def produce(
    devices: int, duration_s: float, interval_s: float, readings_per_message: int, backfill: int | None, seed: int
) -> None:
    """Put simulated readings on the stream, as the IoT topic rule would deliver them.

    Prints each device's true energy (last register - first) as JSON on stdout.

    \b
    Examples:
      wattstream produce --devices 50 --duration-s 120
      wattstream produce --devices 100 --backfill 500 --readings-per-message 25
    """
    from devstack.loadgen import Fleet, run_backfill, run_live

    settings = _settings()
    fleet = Fleet(devices, interval_ms=int(interval_s * 1000), seed=seed)
    kinesis = settings.client("kinesis")
    if backfill:
        records = run_backfill(kinesis, settings.stream_name, fleet, backfill, readings_per_message)
    else:
        records = run_live(kinesis, settings.stream_name, fleet, duration_s, readings_per_message)
    truth = fleet.truth()
    click.echo(f"sent {records} records, {sum(n for n, _ in truth.values())} readings", err=True)
    click.echo(json.dumps({d: {"readings": n, "energy_wh": e} for d, (n, e) in truth.items()}))


@click.command()
@click.option("--device", "devices", multiple=True, help="Only these devices (repeatable).")
@click.option("--metrics-url", default=None, help="Also show write counts from this /metrics endpoint.")
def report(devices: tuple[str, ...], metrics_url: str | None) -> None:
    """Print per-device energy (kWh) and samples from the aggregates table.

    \b
    Examples:
      wattstream report
      wattstream report --device box-0001 --metrics-url http://127.0.0.1:9108/metrics
    """
    from devstack.report import energy_by_device, samples_by_device, scan_aggregates, scrape, write_summary

    settings = _settings()
    items = scan_aggregates(settings.client("dynamodb"), settings.aggregates_table)
    energy, samples = energy_by_device(items), samples_by_device(items)
    shown = sorted(d for d in energy if not devices or d in devices)
    click.echo(f"{'device':<16}{'kWh':>12}{'samples':>10}")
    for device_id in shown:
        click.echo(f"{device_id:<16}{energy[device_id] / 1000:>12.3f}{samples.get(device_id, 0):>10}")
    click.echo(f"{'total':<16}{sum(energy[d] for d in shown) / 1000:>12.3f}{sum(samples.get(d, 0) for d in shown):>10}")
    if metrics_url:
        for key, value in write_summary(scrape(metrics_url)).items():
            click.echo(f"{key:<30}{value:>14.2f}")


@click.command()
@click.option("--devices", default=50, show_default=True)
@click.option("--duration-s", default=120.0, show_default=True)
@click.option("--max-age-s", default=15.0, show_default=True, help="Batch age limit for the demo's consumer.")
@click.option(
    "--serve/--no-serve",
    default=False,
    show_default=True,
    help="After the figures, serve the fleet page and the API over the demo's data until Ctrl-C.",
)
@click.option(
    "--serve-s",
    type=float,
    default=None,
    help="Serve this many seconds, then stop. Default: until Ctrl-C on a terminal, not at all otherwise.",
)
def demo(devices: int, duration_s: float, max_age_s: float, serve: bool, serve_s: float | None) -> None:
    """Everything on local defaults: emulators, consumer, simulated fleet, then a report.

    Starts what it needs, checks every device's kWh against the simulated meters, prints the
    write operations made versus one per reading, and stops everything it started.

    \b
    Examples:
      wattstream demo
      wattstream demo --devices 20 --duration-s 30
      wattstream demo --serve            # then the fleet page on http://127.0.0.1:8080/ until Ctrl-C
      wattstream demo --serve --serve-s 600   # ... for ten minutes
    """
    from devstack.demo import run_demo

    sys.exit(run_demo(devices=devices, duration_s=duration_s, max_age_s=max_age_s, serve=serve, serve_s=serve_s))
