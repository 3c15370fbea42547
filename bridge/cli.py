"""``wattstream bridge``: the local stand-in for the IoT Core topic rule.

Library errors become ``click.ClickException`` here, at the edge.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from readings.errors import WattstreamError
from readings.logs import configure as configure_logging


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", help="MQTT broker host [env WATTSTREAM_BRIDGE_HOST, default localhost].")
@click.option("--port", type=int, help="MQTT broker TLS port [env WATTSTREAM_BRIDGE_PORT, default 8883].")
@click.option(
    "--cert-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder with ca.crt, bridge.crt, bridge.key [default .local/certs].",
)
@click.option("--stream-name", help="Kinesis stream [env WATTSTREAM_STREAM_NAME, default wattstream-readings].")
@click.option("--protocol", type=click.Choice(["3.1.1", "5"]), help="MQTT version [default 3.1.1].")
@click.option("--metrics-port", type=int, help="Prometheus endpoint port (0 = off).")
@click.option(
    "--dead-letter-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="JSONL files of the messages the rule fails on "
    "[env WATTSTREAM_BRIDGE_DEAD_LETTER_DIR, default .local/bridge/dead-letter].",
)
def bridge(
    host: str | None,
    port: int | None,
    cert_dir: Path | None,
    stream_name: str | None,
    protocol: str | None,
    metrics_port: int | None,
    dead_letter_dir: Path | None,
) -> None:
    """Forward MQTT messages to Kinesis as the IoT Core topic rule does.

    Subscribes to energy/consumption/+ in a persistent QoS 1 session, applies
    SELECT *, topic(3) AS thing, timestamp() AS received_ms, puts the records on the stream
    (partition key = thing) and acknowledges each message only once Kinesis accepted it.
    A message the rule cannot evaluate goes to a JSONL file in --dead-letter-dir (the rule's
    error action), and is acknowledged then. Exits non-zero when it cannot go on receiving.
    The Kinesis endpoint comes from AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL.

    \b
    Examples:
      wattstream bridge --port 18883 --cert-dir .local/certs
      AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:4568 wattstream bridge --stream-name wattstream-readings
      wattstream bridge --port 18883 --dead-letter-dir /var/lib/wattstream/dead-letter
    """
    import boto3
    from botocore.config import Config

    from bridge.kinesis import KinesisWriter
    from bridge.service import Bridge, BridgeConfig
    from bridge.settings import BridgeSettings

    overrides: dict[str, Any] = {
        "bridge_host": host,
        "bridge_port": port,
        "bridge_cert_dir": cert_dir,
        "stream_name": stream_name,
        "bridge_protocol": protocol,
        "bridge_metrics_port": metrics_port,
        "bridge_dead_letter_dir": dead_letter_dir,
    }
    try:
        settings = BridgeSettings(**{k: v for k, v in overrides.items() if v is not None})
        configure_logging(settings.log_level)
        if settings.bridge_metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.bridge_metrics_port)
        client = boto3.client(
            "kinesis",
            region_name=settings.region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )
        certs = settings.bridge_cert_dir
        config = BridgeConfig(
            host=settings.bridge_host,
            port=settings.bridge_port,
            ca_file=certs / "ca.crt",
            cert_file=certs / "bridge.crt",
            key_file=certs / "bridge.key",
            client_id=settings.bridge_client_id,
            protocol=settings.bridge_protocol,
            batch_max_records=settings.bridge_batch_max_records,
            batch_max_wait_s=settings.bridge_batch_max_wait_s,
            reconnect_max_s=settings.bridge_reconnect_max_s,
            dead_letter_dir=settings.bridge_dead_letter_dir,
        )
        for path in (config.ca_file, config.cert_file, config.key_file):
            if not path.exists():
                raise click.ClickException(f"missing {path}: run `wattstream certs init --dir {certs}`")
        service = Bridge(config, KinesisWriter(client, settings.stream_name))
        signal.signal(signal.SIGTERM, lambda *_: service.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: service.stop_event.set())
        service.run()
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc
