"""``wattstream devices`` against the moto server: the registry from the command line, as a user runs it."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner, Result

from consumer.cli import main
from sinks.read import scan_items
from sinks.registry import PARTITION


@pytest.fixture
def run(moto):
    table = moto.table([("device_id", "HASH"), ("bucket", "RANGE")])
    env = {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "WATTSTREAM_REGION": "us-east-1",
        "WATTSTREAM_AGGREGATES_TABLE": table,
    }

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["devices", *args], env=env)

    invoke.items = lambda: scan_items(moto.dynamodb, table)  # type: ignore[attr-defined]
    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def refused(result: Result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    return line


def add_fleet(run) -> None:
    ok(
        run(
            "add",
            "box-0001",
            "--tz",
            "Europe/Paris",
            "--name",
            "Kitchen plug",
            "--site",
            "paris-1",
            "--tariff",
            "edf-tempo",
            "--tag",
            "plug",
            "--tag",
            "kitchen",
            "--power-limit-w",
            "3500",
            "--daily-budget-kwh",
            "12.5",
        )
    )
    ok(run("add", "box-0002", "--site", "paris-1", "--tag", "meter"))
    ok(run("add", "box-0003", "--tz", "America/New_York", "--site", "nyc", "--tag", "plug"))


def test_add_then_show_gives_the_entry_back(run) -> None:
    add_fleet(run)
    assert json.loads(ok(run("show", "box-0001"))) == {
        "device_id": "box-0001",
        "tz": "Europe/Paris",
        "name": "Kitchen plug",
        "site": "paris-1",
        "tariff": "edf-tempo",
        "tags": ["kitchen", "plug"],
        "power_limit_w": 3500.0,
        "daily_budget_kwh": 12.5,
    }
    table = ok(run("show", "box-0002", "--format", "table"))
    assert "tz                UTC" in table and "site              paris-1" in table
    assert {(i["device_id"], i["bucket"]) for i in run.items()} == {(PARTITION, f"box-000{n}") for n in (1, 2, 3)}


def test_list_selects_by_site_and_tag_in_every_format(run) -> None:
    add_fleet(run)
    rows = list(csv.DictReader(io.StringIO(ok(run("list", "--format", "csv")))))
    assert [r["device_id"] for r in rows] == ["box-0001", "box-0002", "box-0003"]
    assert rows[0]["tags"] == "kitchen,plug" and rows[1]["name"] == "" and rows[2]["tz"] == "America/New_York"
    assert [e["device_id"] for e in json.loads(ok(run("list", "--tag", "plug", "--format", "json")))] == [
        "box-0001",
        "box-0003",
    ]
    table = ok(run("list", "--site", "paris-1", "--tag", "plug")).splitlines()
    assert table[0].split() == [
        "device_id",
        "tz",
        "name",
        "site",
        "tariff",
        "tags",
        "power_limit_w",
        "daily_budget_kwh",
    ]
    assert [line.split()[0] for line in table[1:]] == ["box-0001"]
    assert json.loads(ok(run("list", "--site", "nowhere", "--format", "json"))) == []


def test_set_changes_only_what_it_is_given(run) -> None:
    add_fleet(run)
    ok(run("set", "box-0001", "--tz", "Europe/Berlin", "--tag", "meter", "--untag", "plug", "--unset", "tariff"))
    after = json.loads(ok(run("show", "box-0001")))
    assert (after["tz"], after["tags"], after["tariff"], after["name"]) == (
        "Europe/Berlin",
        ["kitchen", "meter"],
        None,
        "Kitchen plug",
    )
    ok(run("set", "box-0001", "--unset", "tags", "--unset", "power-limit-w"))
    after = json.loads(ok(run("show", "box-0001")))
    assert (after["tags"], after["power_limit_w"], after["daily_budget_kwh"]) == ([], None, 12.5)


def test_remove_deletes_the_entry_and_a_second_remove_says_so(run) -> None:
    add_fleet(run)
    assert "box-0002 removed" in ok(run("remove", "box-0002"))
    assert "not registered" in refused(run("remove", "box-0002"))
    assert "not registered" in refused(run("show", "box-0002"))
    assert [e["device_id"] for e in json.loads(ok(run("list", "--format", "json")))] == ["box-0001", "box-0003"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "box-0009", "--tz", "Mars/Olympus_Mons"], "not a time zone"),
        (["add", "box-0009", "--power-limit-w", "-5"], "not negative"),
        (["add", "box-0009", "--name", ""], "non-empty"),
        (["add", "box-0009", "--site", "x" * 201], "at most 200"),
        (["add", "box-0009", *[a for n in range(33) for a in ("--tag", f"t{n}")]], "at most 32"),
        (["add", "box#9"], "not a device id"),
        (["add", "box-0001"], "registered already"),
        (["set", "box-0009", "--name", "ghost"], "not registered"),
        (["set", "box-0009", "--tag", "ghost"], "not registered"),
        (["set", "box-0001", "--daily-budget-kwh", "nan"], "finite"),
        (["set", "box-0001", "--tz", "Nowhere/Else"], "not a time zone"),
    ],
)
def test_a_refused_command_says_why_in_one_line_and_changes_nothing(run, args: list[str], message: str) -> None:
    add_fleet(run)
    before = run.items()
    assert message in refused(run(*args))
    assert run.items() == before


def test_set_without_a_change_or_with_a_contradiction_is_a_usage_error(run) -> None:
    add_fleet(run)
    assert "nothing to change" in refused(run("set", "box-0001"), exit_code=2)
    assert "--unset name" in refused(run("set", "box-0001", "--name", "x", "--unset", "name"), exit_code=2)
