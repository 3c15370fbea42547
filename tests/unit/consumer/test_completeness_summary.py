"""The completeness summary of one device over a range, and the table's order."""

from __future__ import annotations

from consumer.completeness import rows, summarise
from sinks.read import Interval

HOUR = 3_600_000
T0 = 1_794_912_000_000  # an hour's start
LIMIT = 15 * 60_000


def hour(k: int, samples: int, *, missing: int = 0, gaps: int = 0, silent_ms: int = 0) -> Interval:
    return Interval("box-1", T0 + k * HOUR, 3600, 10.0, samples, seq_gaps=gaps, missing=missing, silent_ms=silent_ms)


def test_complete_hours_are_a_hundred_percent_and_actual() -> None:
    got = summarise(
        "box-1",
        [hour(0, 60), hour(1, 60)],
        end_ms=T0 + 2 * HOUR,
        last_seen_ms=T0 + 2 * HOUR - 60_000,
        silence_limit_ms=LIMIT,
    )
    assert (got.expected, got.received, got.percent, got.quality) == (120, 120, 100.0, "A")


def test_missing_readings_and_silence_make_it_estimated() -> None:
    got = summarise(
        "box-1",
        [hour(0, 30, missing=30, gaps=30, silent_ms=40 * 60_000)],
        end_ms=T0 + HOUR,
        last_seen_ms=T0 + HOUR - 60_000,
        silence_limit_ms=LIMIT,
    )
    assert (got.expected, got.percent, got.seq_gaps, got.quality) == (60, 50.0, 30, "E")


def test_a_device_still_silent_at_the_end_counts_what_its_cadence_misses() -> None:
    # 60 readings in the first hour (one a minute, the last at 00:59), then nothing for 61 minutes.
    got = summarise("box-1", [hour(0, 60)], end_ms=T0 + 2 * HOUR, last_seen_ms=T0 + 59 * 60_000, silence_limit_ms=LIMIT)
    assert got.silent_ms == 61 * 60_000 and got.missing == 61 and got.quality == "E"


def test_a_device_with_nothing_in_the_range_has_no_data() -> None:
    got = summarise("box-1", [], end_ms=T0 + HOUR, last_seen_ms=None, silence_limit_ms=LIMIT)
    assert (got.expected, got.quality, got.percent) == (0, "N", 0.0)


def test_the_table_puts_the_worst_first_and_no_data_last() -> None:
    found = [
        summarise(d, hs, end_ms=T0 + HOUR, last_seen_ms=None, silence_limit_ms=LIMIT)
        for d, hs in (("full", [hour(0, 60)]), ("half", [hour(0, 30, missing=30)]), ("none", []))
    ]
    assert [r[0] for r in rows(found)] == ["half", "full", "none"]
