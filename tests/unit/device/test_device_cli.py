"""The CLI edge: every command documents an example; certs come out with the right names."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bridge.cli import bridge
from device.certs import common_name
from device.cli import certs, device


def commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = [("bridge", bridge)]
    for group in (device, certs):
        out.append((group.name, group))
        out.extend((f"{group.name} {name}", cmd) for name, cmd in group.commands.items())
    return out


@pytest.mark.parametrize("name,command", commands(), ids=[n for n, _ in commands()])
def test_every_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, f"`wattstream {name} --help` shows no example"


def test_certs_init_and_device_write_the_expected_identities(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(certs, ["init", "--dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(certs, ["device", "--dir", str(tmp_path), "box-7", "box-8"]).exit_code == 0
    assert common_name(tmp_path / "bridge.crt") == "wattstream-bridge"
    assert common_name(tmp_path / "devices" / "box-8.crt") == "box-8"
    assert (tmp_path / "devices" / "box-7.key").stat().st_mode & 0o777 == 0o600


def test_device_certificate_without_a_ca_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(certs, ["device", "--dir", str(tmp_path), "box-1"])
    assert result.exit_code != 0 and "certs init" in result.output
