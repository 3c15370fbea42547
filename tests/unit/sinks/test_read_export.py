"""Reading back the export register: closed items, the live view's open hour, and net."""

from __future__ import annotations

import pytest

from batcher.ledger import Live
from sinks.live import entry, parse_entry
from sinks.read import Interval, logical_buckets


def live(export_wh: float) -> Live:
    return Live(7, 1_795_000_000_000 - 2 * 3_600_000, 120.0, 5_000.0, "h#2026-11-18T09", 40.0, 3, 150.0, export_wh)


def test_an_import_only_device_keeps_the_six_value_entry() -> None:
    assert len(entry(live(0.0))) == 6
    assert parse_entry(entry(live(0.0)))["hour_export_wh"] == 0.0


def test_an_exporting_device_adds_its_open_hour_export() -> None:
    values = entry(live(12.3456))
    assert len(values) == 7 and parse_entry(values)["hour_export_wh"] == 12.346


def test_closed_and_open_buckets_carry_export_and_the_open_day_sums_it() -> None:
    items = [
        {"device_id": "box-1", "bucket": "h#2026-11-18T08", "energy_wh": 10.0, "samples": 4, "export_wh": 2.5},
        {"device_id": "live#00001", "bucket": "live", "box-1": entry(live(4.0))},
    ]
    figures = logical_buckets(items)
    assert figures[("box-1", "h#2026-11-18T08")]["export_wh"] == 2.5
    assert figures[("box-1", "h#2026-11-18T09")]["export_wh"] == 4.0
    assert figures[("box-1", "d#2026-11-18")]["export_wh"] == pytest.approx(6.5)
    assert figures[("box-1", "d#2026-11-18")]["energy_wh"] == pytest.approx(50.0)


def test_an_open_hour_with_gaps_carries_them_and_older_entries_read_as_none() -> None:
    base = live(0.0)
    gappy = Live(*[getattr(base, f) for f in Live.__dataclass_fields__][:9], 3, 5, 120_000)
    values = entry(gappy)
    assert len(values) == 10 and values[6] == 0.0
    parsed = parse_entry(values)
    assert (parsed["hour_seq_gaps"], parsed["hour_missing"], parsed["hour_silent_ms"]) == (3, 5, 120_000)
    assert parse_entry(entry(live(2.0)))["hour_missing"] == 0


def test_net_is_import_minus_export() -> None:
    assert Interval("box-1", 0, 3600, 10.0, 4, export_wh=12.5).net_wh == -2.5
