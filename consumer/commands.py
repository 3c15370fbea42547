"""The consumer's own command: ``wattstream consume`` (the local dev kit's are in ``devstack``)."""

from __future__ import annotations

import sys

import click

from consumer.settings import Settings


def _settings() -> Settings:
    from readings.logs import configure

    settings = Settings()
    configure(settings.log_level)
    return settings


@click.command()
def consume() -> None:
    """Run the KCL consumer (MultiLangDaemon + one processor per shard) until SIGTERM.

    Batches flush every WATTSTREAM_MAX_AGE_S seconds or WATTSTREAM_MAX_RECORDS records;
    metrics are served on WATTSTREAM_METRICS_PORT (default 9108). SIGTERM or Ctrl-C (also
    sent to the whole process group) flushes, checkpoints and exits 0. Several workers share
    the stream's shards; WATTSTREAM_WORKER_ID=slot gives each a worker slot, so a worker
    started in place of a dead one takes its shards back at once.

    \b
    Examples:
      wattstream consume
      WATTSTREAM_MAX_AGE_S=5 WATTSTREAM_MAX_RECORDS=500 wattstream consume
      WATTSTREAM_WORKER_ID=slot wattstream consume      # as the ECS service runs it
    """
    from consumer.runner import run

    sys.exit(run(_settings()))
