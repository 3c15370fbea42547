"""``wattstream rebuild`` against the emulators, after the real KCL consumer stored a corpus.

One consumer run (kinesis-mock is slow), then every way of rebuilding it: into a second table
(the consumer's items back), under a lower noise tolerance (exactly the intervals the rules
say change), as a dry run (differences printed, nothing written), and killed midway then run
again (the same items as an uninterrupted run).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from consumer.cli import main
from consumer.rebuild_command import wire
from consumer.rebuild_plan import Params, parse_day
from consumer.settings import Settings
from devstack.loadgen import put_records
from sinks.archive import Archive
from sinks.memory import Crash, crash_at
from sinks.read import scan_items
from tests.integration.rebuild_corpus import DEVICES, END_DAY, FIRST_DAY, READINGS, expected, messages

pytestmark = pytest.mark.integration

FLAGS = ("resets", "glitches", "jumps", "clock_steps", "seq_restarts", "seq_conflicts")
CHANGED = {("box-r02", "h#2026-11-17T22"), ("box-r02", "d#2026-11-17"), ("box-r04", "h#2026-11-18T00")}


def closed(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The table's hour and day items, by key."""
    return {(i["device_id"], i["bucket"]): i for i in scan_items(client, table) if i["bucket"][:2] in ("h#", "d#")}


def assert_same_items(got: dict, want: dict) -> None:
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    for key, item in want.items():
        assert abs(got[key]["energy_wh"] - item["energy_wh"]) <= 1e-9, key
        assert got[key]["samples"] == item["samples"], key
        assert {f: got[key].get(f, 0) for f in FLAGS} == {f: item.get(f, 0) for f in FLAGS}, key


def rebuild(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, ["rebuild", "--from", FIRST_DAY, "--to", END_DAY, *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def test_a_rebuild_gives_the_consumer_s_items_back_and_applies_new_rules_exactly(pipeline) -> None:
    settings, client = pipeline.settings, pipeline.settings.client("dynamodb")
    consumer = pipeline.start_consumer()
    sent: list[str] = []
    for wave in messages():  # one wave archived before the next: several objects per shard
        put_records(pipeline.kinesis, settings.stream_name, wave, accepted=sent)
        pipeline.wait_archived(set(sent), timeout_s=300)
    pipeline.wait_stored(consumer, len(DEVICES) * READINGS, timeout_s=120)
    assert consumer.stop() == 0
    live = closed(client, settings.aggregates_table)
    reference = expected(1.0)
    assert len(live) > 20
    for key, item in live.items():  # the corpus is what the plain reference says it is
        assert item["energy_wh"] == pytest.approx(reference[key]["energy_wh"], abs=1e-6), key
        assert (item.get("resets", 0), item.get("glitches", 0)) == (
            reference[key]["resets"],
            reference[key]["glitches"],
        )
    assert sum(i.get("resets", 0) for k, i in live.items() if k[1].startswith("h#")) == 1

    # The same rules into a second table: the consumer's closed items, item by item.
    rebuild("--table", "rebuilt-same")
    assert_same_items(closed(client, "rebuilt-same"), live)
    assert not any("-rebuild-" in name for name in client.list_tables()["TableNames"])  # staging dropped

    # A dry run under a lower tolerance: the differences, and nothing written anywhere.
    bucket_before = Archive(settings.client("s3"), settings.raw_bucket).keys("")
    tables_before = sorted(client.list_tables()["TableNames"])
    dry = rebuild("--dry-run", env={"WATTSTREAM_REGISTER_TOLERANCE_WH": "0.5"})
    header, *rows = [line.split(",") for line in dry.stdout.strip().splitlines()]
    assert header == [
        "device_id",
        "bucket",
        "stored_energy_wh",
        "rebuilt_energy_wh",
        "stored_samples",
        "rebuilt_samples",
    ]
    assert {(r[0], r[1]) for r in rows} == CHANGED
    by_key = {(r[0], r[1]): r for r in rows}
    stored_22, rebuilt_22 = (float(x) for x in by_key[("box-r02", "h#2026-11-17T22")][2:4])
    assert rebuilt_22 - stored_22 == pytest.approx(2950.0, abs=1e-6)
    assert closed(client, settings.aggregates_table) == live
    assert Archive(settings.client("s3"), settings.raw_bucket).keys("") == bucket_before
    assert sorted(client.list_tables()["TableNames"]) == tables_before

    # The lower tolerance for real: 0.7 Wh of box-r02 is a reset now, box-r04's dip a glitch.
    rebuild("--table", "rebuilt-strict", env={"WATTSTREAM_REGISTER_TOLERANCE_WH": "0.5"})
    strict, want = closed(client, "rebuilt-strict"), expected(0.5)
    assert set(strict) == set(live)
    for key, item in strict.items():
        assert item["energy_wh"] == pytest.approx(want[key]["energy_wh"], abs=1e-6), key
        assert (item.get("resets", 0), item.get("glitches", 0)) == (want[key]["resets"], want[key]["glitches"]), key
    assert {key for key in strict if key not in CHANGED} == set(live) - CHANGED
    assert_same_items(
        {k: v for k, v in strict.items() if k not in CHANGED}, {k: v for k, v in live.items() if k not in CHANGED}
    )
    assert all(abs(strict[k]["energy_wh"] - live[k]["energy_wh"]) > 1 or strict[k]["glitches"] for k in CHANGED)

    # Killed at its third archive GET, then run again: the items of the uninterrupted run.
    tolerant = Settings(register_tolerance_wh=0.5)
    p = Params(parse_day(FIRST_DAY), parse_day(END_DAY), (), "rebuilt-killed", 0.5, 100_000.0, 86_400_000, 300_000)
    archive = crash_at(Archive(settings.client("s3"), settings.raw_bucket), "get", call=3)
    with pytest.raises(Crash):
        wire(tolerant, p, own_table=True, dry_run=False, workers=1, archive=archive).run()
    assert any(k.startswith(f"rebuild/{p.rebuild_id}/") for k in pipeline.archive.keys("rebuild/"))
    assert closed(client, "rebuilt-killed") == {}
    rebuild("--table", "rebuilt-killed", "--workers", "1", env={"WATTSTREAM_REGISTER_TOLERANCE_WH": "0.5"})
    assert_same_items(closed(client, "rebuilt-killed"), strict)
