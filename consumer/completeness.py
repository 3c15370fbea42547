"""``wattstream completeness``: per device, how many readings came of those expected, the seq
gaps never filled, the time spent silent and the quality, worst first.

Read from the hours the consumer stores (``batcher.completeness`` says how each figure is
counted) through the read function: queries and one live-view read, never a scan of the
aggregates. A device still silent at the end of the range counts the readings its cadence
says it missed since its last one.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import click

from batcher.completeness import quality
from consumer.query import parse_range
from readings import to_rfc3339
from sinks.read import Interval

COLUMNS = (
    "device_id",
    "expected",
    "received",
    "completeness_pct",
    "seq_gaps",
    "silent_s",
    "quality",
    "last_seen",
)


@dataclass(frozen=True, slots=True)
class Completeness:
    device_id: str
    received: int
    missing: int
    seq_gaps: int
    silent_ms: int
    quality: str
    """The worst of its hours with data: ``N`` none at all, ``E`` some estimated, ``A`` all actual."""
    last_seen_ms: int | None

    @property
    def expected(self) -> int:
        return self.received + self.missing

    @property
    def percent(self) -> float:
        return 100.0 * self.received / self.expected if self.expected else 0.0


def summarise(
    device_id: str,
    hours: Iterable[Interval],
    *,
    end_ms: int,
    last_seen_ms: int | None,
    silence_limit_ms: int,
) -> Completeness:
    """One device's figures over its hours in a range ending at ``end_ms``."""
    hours = list(hours)
    received = sum(h.samples for h in hours)
    missing = sum(h.missing for h in hours)
    silent_ms = sum(h.silent_ms for h in hours)
    flags = {quality(h.samples, h.energy_wh, h.silent_ms) for h in hours}
    if last_seen_ms is not None and hours and end_ms - last_seen_ms > silence_limit_ms:
        # Silent since its last reading: what its cadence in the range says it missed.
        first = hours[0].start_ms
        cadence_ms = max(1, (last_seen_ms - first) // max(1, received + missing - 1)) if received > 1 else None
        quiet_ms = end_ms - max(last_seen_ms, first)
        silent_ms += quiet_ms
        if cadence_ms:
            missing += quiet_ms // cadence_ms
        flags.add("E")
    worst = "N" if not hours else "E" if "E" in flags else "A"
    return Completeness(device_id, received, missing, sum(h.seq_gaps for h in hours), silent_ms, worst, last_seen_ms)


def rows(found: Iterable[Completeness]) -> list[list[object]]:
    """Table rows, worst completeness first."""
    ordered = sorted(found, key=lambda c: (c.expected == 0, c.percent, c.device_id))
    return [
        [
            c.device_id,
            c.expected,
            c.received,
            round(c.percent, 1),
            c.seq_gaps,
            c.silent_ms // 1000,
            c.quality,
            "" if c.last_seen_ms is None else to_rfc3339(c.last_seen_ms).replace(".000Z", "Z"),
        ]
        for c in ordered
    ]


@click.command()
@click.option("--from", "start", required=True, help="Start: a date (UTC midnight) or RFC 3339.")
@click.option("--to", "end", required=True, help="End, exclusive: a date or RFC 3339.")
@click.option("--device", "devices", multiple=True, help="Only these devices (repeatable); default: every device.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table", show_default=True)
def completeness(start: str, end: str, devices: tuple[str, ...], fmt: str) -> None:
    """Per device: readings expected and received, seq gaps, silent time and quality, worst first.

    Expected = received + missing; missing counts the seq gaps never filled and, across a
    silence longer than WATTSTREAM_SILENCE_LIMIT_S, the readings the device's cadence says it
    missed. Quality: A actual, E estimated (some energy spread across a silence), N no data.

    \b
    Examples:
      wattstream completeness --from 2026-11-27 --to 2026-11-28
      wattstream completeness --from 2026-11-01 --to 2026-12-01 --device box-0001 --format csv
    """
    from consumer.settings import Settings
    from sinks.read import live_devices, read_intervals

    start_ms, end_ms = parse_range(start, end)
    settings = Settings()
    client = settings.client("dynamodb")
    live = live_devices(client, settings.aggregates_table, live_groups=settings.live_groups)
    found = []
    for device_id in devices or tuple(live):
        hours = read_intervals(
            client, settings.aggregates_table, device_id, start_ms, end_ms, "1h", live_groups=settings.live_groups
        )
        seen = live.get(device_id, {}).get("ts_ms")
        found.append(
            summarise(
                device_id,
                hours,
                end_ms=end_ms,
                last_seen_ms=seen if seen is not None and seen < end_ms else None,
                silence_limit_ms=settings.silence_limit_s * 1000,
            )
        )
    table = rows(found)
    if fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(COLUMNS)
        out.writerows(table)
        return
    widths = [max(len(str(v)) for v in column) for column in zip(COLUMNS, *table, strict=False)]
    for line in (COLUMNS, *table):
        click.echo(
            "  ".join(
                str(v).rjust(w) if isinstance(v, int | float) else str(v).ljust(w)
                for v, w in zip(line, widths, strict=False)
            ).rstrip()
        )
