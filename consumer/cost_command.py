"""``wattstream cost``: the monthly AWS bill of a fleet shape, per design, line by line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from readings.errors import WattstreamError

SHORT_LABELS = {
    "iot_connectivity": "IoT connectivity",
    "iot_messaging": "IoT messaging",
    "iot_rules": "IoT rules triggered",
    "iot_actions": "IoT rule actions",
    "kinesis_shards": "Kinesis shard-hours",
    "kinesis_put_units": "Kinesis PUT units",
    "kinesis_stream_hours": "Kinesis stream-hours",
    "kinesis_ingest": "Kinesis data in",
    "kinesis_retrieval": "Kinesis data out",
    "fargate_vcpu": "Fargate vCPU",
    "fargate_memory": "Fargate memory",
    "lambda_requests": "Lambda requests",
    "lambda_duration": "Lambda duration",
    "dynamodb_writes": "DynamoDB writes",
    "dynamodb_reads": "DynamoDB reads",
    "dynamodb_storage": "DynamoDB storage",
    "s3_puts": "S3 PUTs",
    "s3_gets": "S3 GETs",
    "s3_storage": "S3 storage",
    "cloudwatch_metrics": "CloudWatch metrics",
    "cloudwatch_logs": "CloudWatch logs",
}


def _amount(value: float) -> str:
    """Units with an SI suffix, so 438000000 reads 438.0M."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f}{suffix}"
    return f"{value:.3g}" if value else "0"


def render_text(result: object) -> str:
    from consumer.cost import Estimate

    assert isinstance(result, Estimate)
    shape = result.shape
    out = [
        f"{shape.boxes:,} boxes, a reading every {shape.reading_interval_s:g} s, {shape.readings_per_message} per message "
        f"({shape.payload_bytes} B), {shape.flush_interval_s:g} s flushes, {shape.months_kept:g} months kept, "
        f"{'Basic Ingest' if shape.ingest == 'basic' else 'topic publish'}",
        f"{shape.readings_per_s:,.1f} readings/s, {shape.messages_per_s:,.1f} messages/s; us-east-1 list prices, 730 h month",
    ]
    for b in result.bills:
        how = "the cheaper mode" if result.kinesis_chosen else "as asked"
        out += [
            "",
            f"== {b.design}: Kinesis {b.kinesis_mode} ({how}), {b.shards} shard{'s' * (b.shards > 1)}",
            f"{'line':<44}{'units/month':>22}{'$/month':>12}",
        ]
        out += [f"{ln.label:<44}{_amount(ln.units):>10} {ln.unit:<11}{ln.usd:>12,.2f}" for ln in b.lines]
        out += [
            f"{'total':<44}{'':>22}{b.total_usd:>12,.2f}",
            f"{'$ per million readings':<44}{'':>22}{b.usd_per_million_readings:>12,.4f}",
        ]
        out += [f"note: {note}" for note in b.notes]
    if len(result.bills) > 1:
        out += ["", "== side by side ($/month)", f"{'line':<30}" + "".join(f"{b.design:>14}" for b in result.bills)]
        keys: list[str] = []
        for b in result.bills:
            at = 0
            for ln in b.lines:  # a key new to the table goes after the line it follows in its bill
                if ln.key in keys:
                    at = keys.index(ln.key) + 1
                else:
                    keys.insert(at, ln.key)
                    at += 1
        for key in keys:
            cells = []
            for b in result.bills:
                found = [ln.usd for ln in b.lines if ln.key == key]
                cells.append(f"{found[0]:>14,.2f}" if found else f"{'-':>14}")
            out.append(f"{SHORT_LABELS.get(key, key):<30}" + "".join(cells))
        out.append(f"{'total':<30}" + "".join(f"{b.total_usd:>14,.2f}" for b in result.bills))
        out.append(
            f"{'$ per million readings':<30}" + "".join(f"{b.usd_per_million_readings:>14,.4f}" for b in result.bills)
        )
        out.append(f"{'kinesis mode':<30}" + "".join(f"{b.kinesis_mode:>14}" for b in result.bills))
    return "\n".join(out)


@click.command()
@click.option(
    "--boxes", type=click.IntRange(min=1), default=10_000, show_default=True, help="Boxes, each connected 24/7."
)
@click.option(
    "--reading-interval-s",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between two readings of a box.",
)
@click.option(
    "--readings-per-message",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Readings a box sends in one MQTT message.",
)
@click.option(
    "--message-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Payload bytes of one message  [default: 60 + 75 x readings per message]",
)
@click.option(
    "--flush-interval-s",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Consumer flush interval (max_age_s).",
)
@click.option(
    "--months-kept",
    type=click.FloatRange(min=0),
    default=12.0,
    show_default=True,
    help="History kept in DynamoDB and S3 (steady state).",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="Kinesis shards  [default: what the throughput needs; on-demand at least 4]",
)
@click.option(
    "--ingest",
    type=click.Choice(["basic", "topic"]),
    default="basic",
    show_default=True,
    help="basic: devices publish to $aws/rules/<rule>/... (no messaging charge); topic: to energy/consumption/<thing>.",
)
@click.option(
    "--kinesis",
    "kinesis_mode",
    type=click.Choice(["provisioned", "on-demand"]),
    default=None,
    help="Stream capacity mode  [default: the cheaper of the two, per design]",
)
@click.option(
    "--design",
    type=click.Choice(["wattstream", "lambda", "per-reading", "all"]),
    default="all",
    show_default=True,
    help="Which design to price; all shows the three side by side.",
)
@click.option(
    "--prices",
    "prices_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="JSON file of prices replacing shipped ones (same keys as consumer/resources/prices.json).",
)
@click.option(
    "--units",
    "units_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Measured units per 1,000 readings  [default: consumer/resources/units.json]",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def cost(
    boxes: int,
    reading_interval_s: float,
    readings_per_message: int,
    message_bytes: int | None,
    flush_interval_s: float,
    months_kept: float,
    shards: int | None,
    ingest: str,
    kinesis_mode: str | None,
    design: str,
    prices_path: Path | None,
    units_path: Path | None,
    output_format: str,
) -> None:
    """Print the monthly AWS bill and the cost per million readings of a fleet, line by line.

    IoT Core, Kinesis, Fargate or Lambda, DynamoDB, S3 and CloudWatch, at us-east-1 list
    prices (consumer/resources/prices.json, each with its source). The consumer's units come
    from a measured file (python -m bench.fleet_cost); the shipped one holds placeholders.
    The model and its assumptions: docs/cost.md.

    \b
    Examples:
      wattstream cost
      wattstream cost --boxes 100000
      wattstream cost --reading-interval-s 1 --readings-per-message 10 --design wattstream
      wattstream cost --ingest topic --kinesis on-demand --format json
      wattstream cost --units bench-units.json --prices my-prices.json
    """
    from consumer.cost import DESIGNS, FleetShape, estimate, load_prices, load_units, to_json

    try:
        shape = FleetShape(
            boxes=boxes,
            reading_interval_s=reading_interval_s,
            readings_per_message=readings_per_message,
            flush_interval_s=flush_interval_s,
            months_kept=months_kept,
            message_bytes=message_bytes,
            ingest=ingest,  # type: ignore[arg-type]
            shards=shards,
        )
        designs = DESIGNS if design == "all" else (design,)
        result = estimate(shape, designs, load_units(units_path), load_prices(prices_path), kinesis_mode)  # type: ignore[arg-type]
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(to_json(result), indent=2) if output_format == "json" else render_text(result))
