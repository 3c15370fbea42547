"""Every command is documented: help with examples, and a mention in the README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from consumer.cli import main

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path + " "))
    return found


COMMANDS = _commands(main)


def test_the_expected_commands_exist() -> None:
    names = {name for name, _ in COMMANDS}
    assert {"local-aws", "init", "consume", "produce", "report", "demo", "bridge", "device", "certs"} <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_help_has_examples_and_the_readme_names_it(path: str, command: click.Command) -> None:
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    if not isinstance(command, click.Group):
        assert "Examples:" in result.output or "Example:" in result.output, f"`wattstream {path} --help` has no example"
    assert f"wattstream {path}" in README, f"README does not mention `wattstream {path}`"


def test_a_library_error_ends_as_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {
        "WATTSTREAM_KCL_JARS_DIR": str(tmp_path / "no-jars"),
        "WATTSTREAM_METRICS_PORT": "0",
        "WATTSTREAM_METRICS_DIR": str(tmp_path / "metrics"),
        "WATTSTREAM_WORK_DIR": str(tmp_path / "work"),
    }
    result = CliRunner().invoke(main, ["consume"], env=env)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "no KCL jars" in line and "make install" in line
