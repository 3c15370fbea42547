"""``wattstream query``: stored energy per local interval (15 minutes to a month), as CSV, a table or JSON.

One device, or every registered device of a site or a tag. Each interval is summed from the
quarters the hour items carry (``sinks.intervals``), in the device's zone (the registry's, or
``--tz``), so local days survive DST and half-hour offsets; today's open interval comes from the
live view. Intervals without data are listed with quality ``N``.

The CSV is the canonical interval layout, one row per interval and register::

    device_id,start,duration_s,energy_wh,samples,local_start,tz,register,power_mean_w,power_max_w,quality

``start`` in UTC (RFC 3339), ``local_start`` with the zone's offset, ``register`` the OBIS code
(``1.8.0`` import; ``2.8.0`` export, listed only for a device that exported in the range),
``power_mean_w`` the interval's energy over its length, ``quality`` ``A`` actual, ``E``
estimated, ``N`` no data. The total goes to standard error, so the CSV stays a clean table.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import orjson

from readings import to_rfc3339
from sinks.intervals import EVERY, parse_local, zone
from sinks.read import Interval

COLUMNS = (
    "device_id",
    "start",
    "duration_s",
    "energy_wh",
    "samples",
    "local_start",
    "tz",
    "register",
    "power_mean_w",
    "power_max_w",
    "quality",
)
IMPORT, EXPORT = "1.8.0", "2.8.0"
MAX_INTERVALS = 100_000
"""A year of quarters for a device is 35,040; more than this is almost surely a typing slip."""


def parse_instant(text: str) -> int:
    """Epoch ms of ``2026-11-27`` (midnight UTC) or an RFC 3339 instant (``Z`` or an offset)."""
    return parse_local(text, "UTC")


def parse_range(start: str, end: str, tz: str = "UTC") -> tuple[int, int]:
    """``--from`` and ``--to`` as epoch ms in ``tz``; a click error when either is unreadable or they are reversed."""
    try:
        start_ms, end_ms = parse_local(start, tz), parse_local(end, tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if end_ms <= start_ms:
        raise click.BadParameter("--to must be after --from")
    return start_ms, end_ms


def today(tz: str, now_ms: int | None = None) -> tuple[str, str]:
    """Today's local date and tomorrow's, as ``--from`` and ``--to`` texts."""
    now = datetime.now(UTC) if now_ms is None else datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    day = now.astimezone(zone(tz)).date()
    return day.isoformat(), (day + timedelta(days=1)).isoformat()


def rows(intervals: Iterable[Interval]) -> list[dict[str, Any]]:
    """The canonical rows of some intervals: the import register's, then the export's if it has any."""
    intervals = list(intervals)
    exported = any(i.export_wh for i in intervals)
    out = []
    for register in (IMPORT, EXPORT) if exported else (IMPORT,):
        for i in intervals:
            energy = i.energy_wh if register == IMPORT else i.export_wh
            out.append(
                {
                    "device_id": i.device_id,
                    "start": to_rfc3339(i.start_ms).replace(".000Z", "Z"),
                    "duration_s": i.duration_s,
                    "energy_wh": round(energy, 6),
                    "samples": i.samples,
                    "local_start": i.local_start,
                    "tz": i.tz,
                    "register": register,
                    "power_mean_w": round(energy * 3600 / i.duration_s, 3) if i.duration_s else 0.0,
                    "power_max_w": i.power_max_w if register == IMPORT else None,
                    "quality": i.quality,
                    "closed": i.closed,
                }
            )
    return out


def total(intervals: Iterable[Interval]) -> dict[str, Any]:
    intervals = list(intervals)
    energy = sum(i.energy_wh for i in intervals)
    export = sum(i.export_wh for i in intervals)
    flags = {i.quality for i in intervals}
    return {
        "intervals": len(intervals),
        "energy_wh": round(energy, 6),
        "energy_kwh": round(energy / 1000, 9),
        "export_wh": round(export, 6),
        "samples": sum(i.samples for i in intervals),
        "power_max_w": max((i.power_max_w for i in intervals if i.power_max_w is not None), default=None),
        "quality": "N" if flags <= {"N"} else "A" if flags == {"A"} else "E",
    }


@click.command()
@click.argument("device_id", required=False)
@click.option("--site", help="Every registered device of this site (instead of DEVICE_ID).")
@click.option("--tag", help="Every registered device with this tag (instead of, or with, --site).")
@click.option(
    "--from", "start", help="First interval: a date (local midnight), a local time or RFC 3339. Default: today."
)
@click.option("--to", "end", help="End, exclusive, like --from. Default: the end of --from's day.")
@click.option(
    "--every", type=click.Choice(EVERY), default="1h", show_default=True, help="Interval length (local time)."
)
@click.option("--tz", help="IANA time zone of the intervals. Default: the device's (registry), else UTC.")
@click.option("--format", "fmt", type=click.Choice(["csv", "table", "json"]), default="csv", show_default=True)
def query(
    device_id: str | None,
    site: str | None,
    tag: str | None,
    start: str | None,
    end: str | None,
    every: str,
    tz: str | None,
    fmt: str,
) -> None:
    """Print energy (import and export), samples, power and quality per interval, and a total.

    Reads are Queries (one per device over the range's hour items) and one GetItem of each
    device's live entry, never a Scan.

    \b
    Examples:
      wattstream query box-0001                                   # today, hourly, in the device's zone
      wattstream query box-0001 --from 2026-10-25 --every 15m --tz Europe/Berlin   # a 25-hour day: 100 rows
      wattstream query box-0001 --from 2026-11-01 --to 2026-12-01 --every 1d --format table
      wattstream query --site depot-north --from 2026-01-01 --to 2027-01-01 --every 1mo --format json
    """
    from consumer.settings import Settings
    from sinks.read import read_series
    from sinks.registry import RegistryStore

    settings = Settings()
    client = settings.client("dynamodb")
    registry = RegistryStore(client, settings.aggregates_table)
    if device_id is not None and (site or tag):
        raise click.UsageError("give a DEVICE_ID or --site/--tag, not both")
    if device_id is None:
        if not (site or tag):
            raise click.UsageError("give a DEVICE_ID, --site or --tag")
        infos = registry.list(site=site, tag=tag)
        if not infos:
            raise click.ClickException(f"no registered device matches site={site!r} tag={tag!r}")
        zones = {info.device_id: tz or info.tz for info in infos}
    else:
        info = registry.get(device_id) if tz is None else None
        zones = {device_id: tz or (info.tz if info else "UTC")}
    try:
        for name in set(zones.values()):
            zone(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from exc

    results: list[tuple[str, list[Interval]]] = []
    for device, device_tz in zones.items():
        first, last = (start, end) if start else today(device_tz)
        if last is None:
            try:
                last = (datetime.fromisoformat(first[:10]) + timedelta(days=1)).date().isoformat()
            except (ValueError, OverflowError) as exc:
                raise click.BadParameter(f"{first[:40]!r}: {exc}", param_hint="--from") from exc
        start_ms, end_ms = parse_range(first, last, device_tz)
        quarters = (end_ms - start_ms) // 900_000
        if quarters > MAX_INTERVALS and every in ("15m", "30m"):
            raise click.BadParameter(f"{quarters} quarters: narrow the range or use a longer --every")
        intervals = read_series(
            client,
            settings.aggregates_table,
            device,
            start_ms,
            end_ms,
            every,
            device_tz,
            live_groups=settings.live_groups,
        )
        results.append((device, intervals))
    _print(results, fmt, every)


def _print(results: list[tuple[str, list[Interval]]], fmt: str, every: str) -> None:
    everything = [i for _, intervals in results for i in intervals]
    if fmt == "json":
        document = {
            "every": every,
            "devices": [
                {"device_id": d, "intervals": rows(intervals), "total": total(intervals)} for d, intervals in results
            ],
            "total": total(everything),
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(COLUMNS)
        for _, intervals in results:
            for row in rows(intervals):
                out.writerow([row[c] for c in COLUMNS])
        t = total(everything)
        click.echo(
            f"total: {t['energy_kwh']:.3f} kWh ({t['energy_wh']:.3f} Wh) over {t['intervals']} intervals, "
            f"{t['samples']} samples, quality {t['quality']}",
            err=True,
        )
        return
    header = f"{'device':<16} {'local start':<25} {'kWh':>10} {'Wh':>12} {'samples':>7} {'mean W':>9} {'max W':>9} q"
    click.echo(header)
    for row in (r for _, intervals in results for r in rows(intervals) if r["register"] == IMPORT):
        max_w = "" if row["power_max_w"] is None else f"{row['power_max_w']:.1f}"
        click.echo(
            f"{row['device_id']:<16} {row['local_start']:<25} {row['energy_wh'] / 1000:>10.3f} {row['energy_wh']:>12.3f} "
            f"{row['samples']:>7} {row['power_mean_w']:>9.1f} {max_w:>9} {row['quality']}"
        )
    t = total(everything)
    max_w = "" if t["power_max_w"] is None else f"{t['power_max_w']:.1f}"
    click.echo(
        f"{'total':<16} {'':<25} {t['energy_kwh']:>10.3f} {t['energy_wh']:>12.3f} {t['samples']:>7} {'':>9} {max_w:>9} "
        f"{t['quality']}"
    )
    if t["export_wh"]:
        click.echo(f"export: {t['export_wh'] / 1000:.3f} kWh ({t['export_wh']:.3f} Wh)")
