"""``wattstream devices``: the device registry (``sinks.registry``) from the command line.

Each command is one or two requests on the registry's partition of the aggregates table
(``WATTSTREAM_AGGREGATES_TABLE``): ``add``, ``remove`` and ``show`` one each, ``set`` one (two
when it adds or removes tags: the entry is read first), ``list`` one paginated Query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import click

from sinks.registry import DEFAULT_TZ, DeviceInfo, RegistryStore

COLUMNS = ("device_id", "tz", "name", "site", "tariff", "tags", "power_limit_w", "daily_budget_kwh")
UNSETTABLE = ("name", "site", "tariff", "tags", "power-limit-w", "daily-budget-kwh")


def _store() -> RegistryStore:
    from consumer.settings import Settings

    settings = Settings()
    return RegistryStore(settings.client("dynamodb"), settings.aggregates_table)


def _entry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--tz", help=f"IANA time zone of the box, e.g. Europe/Paris (new entries: {DEFAULT_TZ})."),
        click.option("--name", help="Display name, up to 200 characters."),
        click.option("--site", help="The site the box is at; `list --site` selects by it."),
        click.option("--tariff", help="Name of the tariff the box is billed under."),
        click.option(
            "--tag", "tags", multiple=True, help="A tag (no spaces or commas, up to 64 characters); repeatable."
        ),
        click.option("--power-limit-w", type=float, help="Alert threshold on power, in W."),
        click.option(
            "--daily-budget-kwh", type=float, help="Alert threshold on a UTC day's energy, in kWh (the budget alert)."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def as_plain(info: DeviceInfo) -> dict[str, Any]:
    """The entry as JSON-ready values (tags a sorted list)."""
    return {name: sorted(info.tags) if name == "tags" else getattr(info, name) for name in COLUMNS}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def render(entries: Sequence[DeviceInfo], fmt: str) -> str:
    """The entries as an aligned table, CSV (one row each, tags joined by commas) or a JSON list."""
    rows = [as_plain(info) for info in entries]
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    cells = [[_cell(row[name]) for name in COLUMNS] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(cells)
        return out.getvalue().rstrip("\n")
    widths = [max(len(c) for c in column) for column in zip(COLUMNS, *cells, strict=False)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [COLUMNS, *cells]]
    return "\n".join(lines)


def _render_one(info: DeviceInfo, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_plain(info), indent=2, ensure_ascii=False)
    width = max(len(name) for name in COLUMNS)
    return "\n".join(f"{name.ljust(width)}  {_cell(value)}".rstrip() for name, value in as_plain(info).items())


@click.group()
def devices() -> None:
    """The device registry: each box's time zone, name, site, tariff, tags and alert thresholds.

    One small item per device in the aggregates table; listing the fleet is one Query.

    \b
    Examples:
      wattstream devices add box-0001 --tz Europe/Paris --site paris-1 --tag plug
      wattstream devices list --site paris-1 --format csv
      wattstream devices set box-0001 --power-limit-w 3500 --untag plug
    """


@devices.command()
@click.argument("device_id")
@_entry_options
def add(device_id: str, tz: str | None, tags: tuple[str, ...], **fields: Any) -> None:
    """Register a device; one already registered is refused (change it with `set`).

    \b
    Examples:
      wattstream devices add box-0001
      wattstream devices add box-0002 --tz Europe/Paris --name "Kitchen plug" --site paris-1 \\
          --tariff edf-tempo --tag plug --tag kitchen --power-limit-w 3500 --daily-budget-kwh 12
    """
    info = DeviceInfo(device_id, tz or DEFAULT_TZ, tags=frozenset(tags), **fields)
    _store().put(info, overwrite=False)
    click.echo(_render_one(info, "table"))


@devices.command("list")
@click.option("--site", help="Only the devices at this site.")
@click.option("--tag", help="Only the devices with this tag.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def list_(site: str | None, tag: str | None, fmt: str) -> None:
    """Print the registered devices (all, or those at a site and with a tag), by id.

    \b
    Examples:
      wattstream devices list
      wattstream devices list --site paris-1 --tag plug
      wattstream devices list --format json > fleet.json
    """
    entries = _store().list(site=site, tag=tag)
    if entries or fmt != "table":
        click.echo(render(entries, fmt))
    else:
        click.echo("no devices registered" + (" that match" if site or tag else ""), err=True)


@devices.command()
@click.argument("device_id")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True)
def show(device_id: str, fmt: str) -> None:
    """Print one device's entry; exit 1 when it is not registered.

    \b
    Examples:
      wattstream devices show box-0001
      wattstream devices show box-0001 --format table
    """
    info = _store().get(device_id)
    if info is None:
        raise click.ClickException(f"{device_id} is not registered")
    click.echo(_render_one(info, fmt))


@devices.command("set")
@click.argument("device_id")
@_entry_options
@click.option("--untag", "untags", multiple=True, help="Remove this tag; repeatable.")
@click.option(
    "--unset",
    "unsets",
    multiple=True,
    type=click.Choice(UNSETTABLE),
    help="Clear a field (tags: all of them); repeatable.",
)
def set_(
    device_id: str, tags: tuple[str, ...], untags: tuple[str, ...], unsets: tuple[str, ...], **fields: Any
) -> None:
    """Change a registered device's fields: the options given, nothing else.

    --tag adds to the device's tags and --untag removes from them (the entry is read first: two
    changes of one device's tags at the same moment keep the last).

    \b
    Examples:
      wattstream devices set box-0001 --tz America/New_York --site nyc
      wattstream devices set box-0001 --tag meter --untag plug
      wattstream devices set box-0001 --unset power-limit-w --unset name
    """
    changes: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
    for option in unsets:
        name = option.replace("-", "_")
        if name in changes or (name == "tags" and (tags or untags)):
            raise click.UsageError(f"--unset {option} together with a new value for it")
        changes[name] = None
    store = _store()
    if tags or untags:
        current = store.get(device_id)
        if current is None:
            raise click.ClickException(f"{device_id} is not registered")
        changes["tags"] = (current.tags | set(tags)) - set(untags)
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    click.echo(_render_one(store.update(device_id, **changes), "table"))


@devices.command()
@click.argument("device_id")
def remove(device_id: str) -> None:
    """Delete a device's entry (its readings and aggregates stay); exit 1 when it is not registered.

    \b
    Examples:
      wattstream devices remove box-0001
    """
    if not _store().remove(device_id):
        raise click.ClickException(f"{device_id} is not registered")
    click.echo(f"{device_id} removed")
