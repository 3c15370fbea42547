"""``wattstream query``: a device's stored energy per hour or day, as CSV, from the read function.

The columns are ``device_id,start,duration_s,energy_wh,samples,export_wh,net_wh`` (``start``
in UTC, RFC 3339; ``energy_wh`` is the import register, OBIS 1.8.0, ``export_wh`` the export
register, OBIS 2.8.0, and ``net_wh`` import minus export), one row per interval with data, so
anyone can check what is stored without knowing the items.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime

import click

from readings import to_rfc3339

COLUMNS = ("device_id", "start", "duration_s", "energy_wh", "samples", "export_wh", "net_wh")


def parse_instant(text: str) -> int:
    """Epoch ms of ``2026-11-27`` (midnight UTC) or an RFC 3339 instant (``Z`` or an offset)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def parse_range(start: str, end: str) -> tuple[int, int]:
    """``--from`` and ``--to`` as epoch ms; a click error when either is unreadable or they are reversed."""
    try:
        start_ms, end_ms = parse_instant(start), parse_instant(end)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if end_ms <= start_ms:
        raise click.BadParameter("--to must be after --from")
    return start_ms, end_ms


@click.command()
@click.argument("device_id")
@click.option("--from", "start", required=True, help="First interval: a date (UTC midnight) or RFC 3339.")
@click.option("--to", "end", required=True, help="End, exclusive: a date or RFC 3339.")
@click.option("--every", type=click.Choice(["1h", "1d"]), default="1h", show_default=True, help="Interval length.")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
def query(device_id: str, start: str, end: str, every: str, fmt: str) -> None:
    """Print a device's energy (import, export, net) and samples per interval, closed and open.

    \b
    Examples:
      wattstream query box-0001 --from 2026-11-27 --to 2026-11-28 --every 1h
      wattstream query box-0001 --from 2026-11-01 --to 2026-12-01 --every 1d --format csv
    """
    from consumer.settings import Settings
    from sinks.read import read_intervals

    start_ms, end_ms = parse_range(start, end)
    settings = Settings()
    intervals = read_intervals(
        settings.client("dynamodb"),
        settings.aggregates_table,
        device_id,
        start_ms,
        end_ms,
        every,  # type: ignore[arg-type]  # click.Choice gives one of the literals
        live_groups=settings.live_groups,
    )
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(COLUMNS)
    for i in intervals:
        out.writerow(
            [
                i.device_id,
                to_rfc3339(i.start_ms).replace(".000Z", "Z"),
                i.duration_s,
                round(i.energy_wh, 6),
                i.samples,
                round(i.export_wh, 6),
                round(i.net_wh, 6),
            ]
        )
