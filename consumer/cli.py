"""The ``wattstream`` command line.

Library errors (``readings.errors.WattstreamError`` and below) become a one-line message and
exit status 1 here, at the edge, for every command; nothing else catches them.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from readings.errors import WattstreamError

EPILOG = """\b
Quick start on this machine (no Docker):
  wattstream local-aws &          # Kinesis on :4568, DynamoDB/S3/CloudWatch/SNS on :4566
  wattstream init                 # stream, tables and bucket (idempotent)
  wattstream consume              # the KCL consumer; Ctrl-C flushes and stops
  wattstream produce --devices 50 --duration-s 60
  wattstream query box-0001 --every 15m --format table
  wattstream serve                # the fleet page and the API on http://127.0.0.1:8080/
"""


class _Edge(click.Group):
    """The group whose commands' library errors end as ``Error: <message>`` and exit 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except WattstreamError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(
    cls=_Edge, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="wattstream")
def main() -> None:
    """wattstream: energy readings from IoT boxes, batched into DynamoDB and S3, each counted once."""


def _add(module: str, attr: str) -> None:
    # Commands live beside the code they drive; a package this image does not ship (the
    # consumer image has no device/, bridge/ or devstack/) is skipped.
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        main.add_command(getattr(importlib.import_module(module), attr))


for _module, _attr in (
    ("devstack.commands", "local_aws"),
    ("devstack.commands", "init"),
    ("consumer.commands", "consume"),
    ("consumer.reshard", "reshard_command"),
    ("devstack.commands", "produce"),
    ("devstack.commands", "report"),
    ("consumer.query", "query"),
    ("consumer.devices", "devices"),
    ("consumer.completeness", "completeness"),
    ("consumer.rebuild_command", "rebuild"),
    ("devstack.commands", "demo"),
    ("consumer.cost_command", "cost"),
    ("api.cli", "serve"),
    ("bridge.cli", "bridge"),
    ("device.cli", "device"),
    ("device.cli", "certs"),
):
    _add(_module, _attr)


if __name__ == "__main__":
    main()
