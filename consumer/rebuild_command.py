"""``wattstream rebuild``: the command, wired to AWS from the settings (``consumer.rebuild`` does the work)."""

from __future__ import annotations

import csv
import sys
import threading
from typing import Any

import click

from readings.errors import ConfigError, SinkError

DEFAULT_WORKERS = 4


class _Bar:
    """A tqdm bar of archive objects, on stderr when it is a terminal (shards advance it from threads)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._lock = threading.Lock()

    def total(self, objects: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=objects, unit="obj", desc="rebuild", file=sys.stderr, disable=None, smoothing=0.1)

    def advance(self, objects: int) -> None:
        if self._bar is not None and objects:
            with self._lock:
                self._bar.update(objects)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@click.command()
@click.option("--from", "start", required=True, help="First day of the range (UTC), YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Day after the range (exclusive), YYYY-MM-DD.")
@click.option("--device", "devices", multiple=True, help="Only this device (repeat for several); default: all.")
@click.option(
    "--table",
    default=None,
    help="Write into this table (created if missing) instead of replacing the range in the aggregates table.",
)
@click.option("--dry-run", is_flag=True, help="Write nothing; print stored vs rebuilt figures where they differ.")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True, help="Shards in parallel."
)
def rebuild(start: str, end: str, devices: tuple[str, ...], table: str | None, dry_run: bool, workers: int) -> None:
    """Recompute the closed hours and days of [--from, --to) from the raw S3 archive.

    The archive is read from its beginning, each shard in sequence-number order and parent
    shards before their children, through the consumer's own decode, register rules
    (WATTSTREAM_REGISTER_TOLERANCE_WH, WATTSTREAM_MAX_POWER_W, WATTSTREAM_ANCHOR_WINDOW_S) and
    batch code, so unchanged rules give the consumer's items back. Only buckets inside the
    range are written. A killed rebuild is resumed by running the same command again.

    \b
    Examples:
      wattstream rebuild --from 2026-11-01 --to 2026-12-01 --dry-run
      wattstream rebuild --from 2026-11-27 --to 2026-11-28 --device box-0001 --device box-0002
      wattstream rebuild --from 2026-11-01 --to 2026-12-01 --table aggregates-compare
      WATTSTREAM_REGISTER_TOLERANCE_WH=0.5 wattstream rebuild --from 2026-11-01 --to 2026-12-01
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.rebuild_plan import DIFF_COLUMNS, Params, diff_row, parse_day
    from consumer.settings import Settings

    try:
        first_ms, end_ms = parse_day(start), parse_day(end)
    except ValueError as exc:
        raise ConfigError(f"--from and --to are dates, YYYY-MM-DD: {exc}") from exc
    if end_ms <= first_ms:
        raise ConfigError("--to must be after --from")
    from readings.logs import configure

    settings = Settings()
    configure(settings.log_level)  # JSON lines on stderr: stdout is the dry run's CSV
    rules = settings.register_rules
    params = Params(
        first_ms,
        end_ms,
        tuple(sorted(set(devices))),
        table or settings.aggregates_table,
        rules.tolerance_wh,
        rules.max_power_w,
        rules.anchor_window_ms,
        int(settings.future_tolerance_s * 1000),
    )
    bar = _Bar()
    try:
        job = wire(settings, params, own_table=table is not None, dry_run=dry_run, workers=workers, progress=bar)
        outcome = job.run()
    except (ClientError, BotoCoreError) as exc:
        raise SinkError(f"rebuild: {exc}") from exc
    finally:
        bar.close()
    summary = (
        f"{outcome.objects} archive objects, {outcome.devices} devices, {len(outcome.differences)} items differ"
        f" in {params.table}; {outcome.kept} kept (written by batches newer than the archive read)"
    )
    if dry_run:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(DIFF_COLUMNS)
        out.writerows(diff_row(d) for d in outcome.differences)
        click.echo(f"dry run, nothing written: {summary}", err=True)
        return
    if outcome.refused:
        first = "/".join(outcome.refused[0])
        raise SinkError(
            f"{len(outcome.refused)} items changed while rebuilding (first {first}); run the same command again"
        )
    click.echo(f"rebuilt {summary}: {outcome.written} written, {outcome.deleted} deleted")


def wire(
    settings: Any,
    params: Any,
    *,
    own_table: bool,
    dry_run: bool,
    workers: int = DEFAULT_WORKERS,
    progress: Any = None,
    archive: Any = None,
) -> Any:
    """The rebuild with its stores: the archive (``archive`` stands in for it when given), the
    checkpoints, a staging table and the target."""
    import structlog

    from consumer.lineage import list_shards, parents_by_shard
    from consumer.rebuild import Rebuild, Staging
    from sinks.aggregates import AggregateStore
    from sinks.archive import Archive
    from sinks.memory import MemoryAggregates, MemoryBucketRanges, MemoryTable
    from sinks.ranges import BucketRanges, drop_table, ensure_table
    from sinks.snapshot import SnapshotStore

    dynamodb, s3 = settings.client("dynamodb"), settings.client("s3")
    try:
        parents = parents_by_shard(list_shards(settings.client("kinesis"), settings.stream_name))
    except Exception as exc:  # noqa: BLE001 - without the listing every shard waits for those numbered below it
        structlog.get_logger("wattstream.rebuild").warning("shard_listing_unavailable", error=repr(exc)[:300])
        parents = None
    staging_table = f"{params.table}-rebuild-{params.rebuild_id[:12]}"

    def open_staging(fresh: bool) -> Staging:
        if dry_run:
            memory = MemoryTable()
            return Staging(MemoryAggregates(memory), MemoryBucketRanges(memory))
        if fresh:
            drop_table(dynamodb, staging_table, wait=True)
        ensure_table(dynamodb, staging_table)
        return Staging(
            AggregateStore(dynamodb, staging_table, workers=settings.flush_workers),
            BucketRanges(dynamodb, staging_table, workers=settings.flush_workers),
            lambda: drop_table(dynamodb, staging_table),
        )

    if own_table and not dry_run:
        ensure_table(dynamodb, params.table)
    return Rebuild(
        params,
        archive=archive if archive is not None else Archive(s3, settings.raw_bucket),
        checkpoints=None if dry_run else SnapshotStore(s3, settings.raw_bucket),
        parents=parents,
        open_staging=open_staging,
        target=BucketRanges(dynamodb, params.table, workers=settings.flush_workers),
        workers=workers,
        progress=progress,
    )
