"""The cost model: totals are the sum of their lines, a hand-computed fleet, and what each option moves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from consumer.cli import main
from consumer.cost import (
    DESIGNS,
    FleetShape,
    bill,
    estimate,
    fargate_tasks,
    load_prices,
    load_units,
    throughput_shards,
)
from readings.errors import ConfigError

PRICES = load_prices()
UNITS = load_units()
W1 = FleetShape(boxes=10_000, reading_interval_s=10, readings_per_message=6, flush_interval_s=60, ingest="topic")


def usd(shape: FleetShape, key: str, design: str = "wattstream", mode: str = "provisioned") -> float:
    return bill(shape, design, UNITS, PRICES, mode).line(key).usd  # type: ignore[arg-type]


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("mode", ["provisioned", "on-demand"])
@pytest.mark.parametrize("ingest", ["basic", "topic"])
def test_the_total_is_the_sum_of_the_lines(design: str, mode: str, ingest: str) -> None:
    shape = FleetShape(boxes=12_345, reading_interval_s=7, readings_per_message=9, ingest=ingest)  # type: ignore[arg-type]
    b = bill(shape, design, UNITS, PRICES, mode)  # type: ignore[arg-type]
    assert b.total_usd == pytest.approx(sum(line.usd for line in b.lines))
    assert b.usd_per_million_readings == pytest.approx(b.total_usd / (12_345 / 7 * 730 * 3600 / 1e6))


def test_w1_by_hand_iot_messaging_and_kinesis() -> None:
    # 10,000 boxes / 10 s = 1,000 readings/s; / 6 per message = 166.67 messages/s.
    # A month is 730 h = 2,628,000 s: 166.67 x 2,628,000 = 438,000,000 messages.
    # A message is 60 + 75 x 6 = 510 B, plus the 27 B topic = 537 B: one 5 KB step each.
    # Messaging: 438,000,000 / 1e6 x $1.00 = $438.00 (inside the first billion).
    assert usd(W1, "iot_messaging") == pytest.approx(438.00)
    # Rules and actions: 438 million each x $0.15 = $65.70 each.
    assert usd(W1, "iot_rules") == pytest.approx(65.70)
    assert usd(W1, "iot_actions") == pytest.approx(65.70)
    # Connectivity: 10,000 x 730 x 60 = 438,000,000 minutes x $0.08 / 1e6 = $35.04.
    assert usd(W1, "iot_connectivity") == pytest.approx(35.04)
    # Kinesis record: 510 + 56 B = 566 B. 166.67 records/s < 1,000 and 94,333 B/s < 1 MiB: one shard.
    # Shard-hours: 1 x 730 x $0.015 = $10.95. PUT units: 566 B < 25 KB, so one per record:
    # 438,000,000 x $0.014 / 1e6 = $6.132.
    assert throughput_shards(W1) == 1
    assert usd(W1, "kinesis_shards") == pytest.approx(10.95)
    assert usd(W1, "kinesis_put_units") == pytest.approx(6.132)
    # On demand: 730 x $0.04 = $29.20; each record billed as 1 KB: 438,000,000 KiB = 417.709 GiB,
    # x $0.08 = $33.417 in, x $0.04 = $16.708 out for one consumer, twice that for two Lambdas.
    assert usd(W1, "kinesis_stream_hours", mode="on-demand") == pytest.approx(29.20)
    assert usd(W1, "kinesis_ingest", mode="on-demand") == pytest.approx(33.4167, abs=1e-3)
    assert usd(W1, "kinesis_retrieval", mode="on-demand") == pytest.approx(16.7084, abs=1e-3)
    assert usd(W1, "kinesis_retrieval", "lambda", "on-demand") == pytest.approx(33.4167, abs=1e-3)


def test_w3_by_hand_messaging_tiers_and_a_full_shard() -> None:
    w3 = FleetShape(boxes=10_000, reading_interval_s=1, readings_per_message=10, ingest="topic")
    # 10,000 readings/s / 10 = 1,000 messages/s x 2,628,000 s = 2,628,000,000 messages of
    # 60 + 750 = 810 B (+27 B topic: one step). First billion at $1.00, the other 1,628 million at
    # $0.80: 1,000 + 1,302.40 = $2,302.40.
    assert usd(w3, "iot_messaging") == pytest.approx(2302.40)
    # 1,000 records/s of 866 B (866,000 B/s < 1 MiB): exactly one shard's record limit.
    assert throughput_shards(w3) == 1
    # 2,628,000,000 PUT units x $0.014 / 1e6 = $36.792.
    assert usd(w3, "kinesis_put_units") == pytest.approx(36.792)


def test_basic_ingest_removes_the_messaging_charge_and_nothing_else() -> None:
    basic = bill(FleetShape(ingest="basic"), "wattstream", UNITS, PRICES, "provisioned")
    topic = bill(FleetShape(ingest="topic"), "wattstream", UNITS, PRICES, "provisioned")
    assert basic.line("iot_messaging").usd == 0 and topic.line("iot_messaging").usd == pytest.approx(438.00)
    for line in basic.lines:
        if line.key != "iot_messaging":
            assert line.usd == pytest.approx(topic.line(line.key).usd), line.key
    assert topic.total_usd - basic.total_usd == pytest.approx(438.00)


def test_a_message_past_5_kb_is_metered_as_two_steps() -> None:
    big = FleetShape(ingest="topic", message_bytes=5_200)
    assert big.iot_steps_per_message == 2
    assert usd(big, "iot_messaging") == pytest.approx(2 * 438.00)
    assert usd(big, "iot_rules") == pytest.approx(2 * 65.70)
    assert FleetShape(message_bytes=5120 - 27).iot_steps_per_message == 1


def test_options_move_the_lines_they_should() -> None:
    base = bill(FleetShape(), "wattstream", UNITS, PRICES, "provisioned")
    twice = bill(FleetShape(boxes=20_000), "wattstream", UNITS, PRICES, "provisioned")
    for key in (
        "iot_connectivity",
        "iot_rules",
        "kinesis_put_units",
        "dynamodb_writes",
        "s3_puts",
        "s3_storage",
        "dynamodb_storage",
    ):
        assert twice.line(key).usd == pytest.approx(2 * base.line(key).usd), key

    kept = bill(FleetShape(months_kept=24), "wattstream", UNITS, PRICES, "provisioned")
    changed = {ln.key for ln in kept.lines if ln.usd != pytest.approx(base.line(ln.key).usd)}
    assert changed == {"dynamodb_storage", "s3_storage"}

    slow = bill(FleetShape(flush_interval_s=600), "wattstream", UNITS, PRICES, "provisioned")
    changed = {ln.key for ln in slow.lines if ln.usd != pytest.approx(base.line(ln.key).usd)}
    assert changed == {"cloudwatch_logs"}

    sharded = bill(FleetShape(shards=8), "wattstream", UNITS, PRICES, "provisioned")
    assert sharded.line("kinesis_shards").units == 8 * 730
    assert sharded.line("fargate_vcpu").label.startswith("Fargate ARM vCPU (2 x")  # one task per 4 shards


def test_throughput_shards_take_the_larger_of_records_and_bytes() -> None:
    # 100,000 boxes / 10 s / 6 = 1,666.7 records/s: two shards by records.
    assert throughput_shards(FleetShape(boxes=100_000)) == 2
    # 1,000 messages/s of 2,000 B + 56 B = 2,056,000 B/s: two shards by bytes (1 MiB each).
    assert (
        throughput_shards(FleetShape(boxes=10_000, reading_interval_s=1, readings_per_message=10, message_bytes=2_000))
        == 2
    )
    # An on-demand stream has the capacity of 4 shards at least.
    assert bill(FleetShape(), "wattstream", UNITS, PRICES, "on-demand").shards == 4


def test_fargate_tasks_round_up_to_fargate_sizes() -> None:
    assert fargate_tasks(0.01, shards=1) == (1, 0.25, 0.5)
    assert fargate_tasks(0.3, shards=1) == (1, 0.5, 1.0)
    assert fargate_tasks(3.0, shards=8) == (2, 2.0, 4.0)
    assert fargate_tasks(40.0, shards=1) == (3, 16.0, 32.0)


def test_the_lambda_design_pays_requests_per_poll_and_batch() -> None:
    # 166.67 records/s on one shard, polled once a second, 100 records per call: 2 calls/s per
    # function, 2 functions: 4 x 2,628,000 = 10,512,000 requests x $0.20 / 1e6 = $2.1024.
    b = bill(W1, "lambda", UNITS, PRICES, "provisioned")
    assert b.line("lambda_requests").units == pytest.approx(10_512_000)
    assert b.line("lambda_requests").usd == pytest.approx(2.1024)
    assert not any(ln.key.startswith("fargate") for ln in b.lines)


def test_the_cheaper_kinesis_mode_is_chosen_per_design() -> None:
    chosen = estimate(FleetShape(), DESIGNS, UNITS, PRICES)
    assert chosen.kinesis_chosen
    for b in chosen.bills:
        other = bill(
            FleetShape(), b.design, UNITS, PRICES, "on-demand" if b.kinesis_mode == "provisioned" else "provisioned"
        )  # type: ignore[arg-type]
        assert b.total_usd <= other.total_usd
    forced = estimate(FleetShape(), ("wattstream",), UNITS, PRICES, "on-demand")
    assert not forced.kinesis_chosen and forced.bills[0].kinesis_mode == "on-demand"


def test_units_from_a_file_drive_the_dynamodb_line(tmp_path: Path) -> None:
    units = json.loads(json.dumps(UNITS))
    units["designs"]["wattstream"]["dynamodb_wru_per_1000_readings"] *= 2
    path = tmp_path / "units.json"
    path.write_text(json.dumps(units))
    doubled = bill(FleetShape(), "wattstream", load_units(path), PRICES, "provisioned")
    assert doubled.line("dynamodb_writes").usd == pytest.approx(2 * usd(FleetShape(), "dynamodb_writes"))
    del units["designs"]["lambda"]["lambda_gb_s_per_1000_readings"]
    path.write_text(json.dumps(units))
    with pytest.raises(ConfigError, match="lambda_gb_s_per_1000_readings"):
        load_units(path)


def test_prices_from_a_file_replace_only_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": {"kinesis_shard_hour": 0.03, "iot_messaging_per_million": {"usd": 2.0}}}))
    prices = load_prices(path)
    b = bill(W1, "wattstream", UNITS, prices, "provisioned")
    assert b.line("kinesis_shards").usd == pytest.approx(2 * 10.95)
    assert b.line("iot_messaging").usd == pytest.approx(2 * 438.00)
    assert b.line("iot_connectivity").usd == pytest.approx(35.04)
    path.write_text(json.dumps({"kinesis_shard_hours": 0.03}))
    with pytest.raises(ConfigError, match="unknown price"):
        load_prices(path)


def test_every_shipped_price_names_its_source_and_date() -> None:
    for key, entry in PRICES.entries.items():
        assert entry["source"].startswith("https://"), key
        assert entry["read"] and entry["checked"], key
        assert "usd" in entry or "tiers" in entry, key


def test_the_shipped_units_say_how_they_were_measured_and_placeholders_say_so(tmp_path: Path) -> None:
    assert UNITS["measured"] is True and UNITS["command"].startswith("python -m bench.fleet_cost")
    notes = bill(FleetShape(), "wattstream", UNITS, PRICES, "provisioned").notes
    assert not any("placeholders" in note for note in notes)
    assert any(
        "another shape" in note for note in bill(FleetShape(boxes=5), "wattstream", UNITS, PRICES, "provisioned").notes
    )
    path = tmp_path / "units.json"
    path.write_text(json.dumps({**UNITS, "measured": False}))
    placeholder_notes = bill(FleetShape(), "wattstream", load_units(path), PRICES, "provisioned").notes
    assert any("placeholders" in note for note in placeholder_notes)


def test_cli_json_lines_sum_to_the_totals() -> None:
    result = CliRunner().invoke(main, ["cost", "--format", "json", "--ingest", "topic"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["designs"]) == set(DESIGNS)
    for design in data["designs"].values():
        assert design["total_usd_per_month"] == pytest.approx(sum(ln["usd_per_month"] for ln in design["lines"]))
    messaging = next(ln for ln in data["designs"]["wattstream"]["lines"] if ln["key"] == "iot_messaging")
    assert messaging["usd_per_month"] == pytest.approx(438.00)


def test_cli_text_says_which_kinesis_mode_and_refuses_bad_shapes() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["cost", "--design", "wattstream"])
    assert result.exit_code == 0, result.output
    assert "Kinesis provisioned (the cheaper mode)" in result.output
    assert "$ per million readings" in result.output and "side by side" not in result.output
    assert "side by side" in runner.invoke(main, ["cost"]).output
    refused = runner.invoke(main, ["cost", "--message-bytes", str(200 * 1024)])
    assert refused.exit_code != 0 and "a message must be" in refused.output
    assert math.isfinite(
        float(
            json.loads(runner.invoke(main, ["cost", "--format", "json"]).output)["designs"]["lambda"][
                "usd_per_million_readings"
            ]
        )
    )
