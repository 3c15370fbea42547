"""``python -m device run|simulate|certs …``: the box's commands without the wattstream CLI."""

import click

from device.cli import certs, device

main = click.Group(
    "device",
    commands={**device.commands, "certs": certs},
    help=device.help,
    context_settings={"help_option_names": ["-h", "--help"]},
)

if __name__ == "__main__":
    main()
