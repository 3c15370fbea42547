"""Local intervals from quarters: every zone exact, DST days of 92 and 100 quarters.

The DST dates and offsets below are facts of the tz database, written down by hand; they are
not computed by the code under test.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.buckets import QUARTER_MS, Quarter
from sinks.intervals import parse_local, slots, sum_quarters

ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Santiago",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]
EVERY = ["15m", "30m", "1h", "1d", "1mo"]

# (zone, local date, hours that day): spring-forward and fall-back days of 2026.
DST_DAYS = [
    ("Europe/Berlin", "2026-03-29", 23),
    ("Europe/Berlin", "2026-10-25", 25),
    ("Europe/London", "2026-03-29", 23),
    ("America/New_York", "2026-03-08", 23),
    ("America/New_York", "2026-11-01", 25),
    ("Australia/Adelaide", "2026-04-05", 25),
    ("Australia/Adelaide", "2026-10-04", 23),
    ("Asia/Kolkata", "2026-03-29", 24),
]


@pytest.mark.parametrize(("tz", "date", "hours"), DST_DAYS)
def test_a_local_day_has_as_many_quarters_as_its_hours_say(tz: str, date: str, hours: int) -> None:
    start = parse_local(date, tz)
    (day,) = slots(start, start + 1, "1d", tz)
    assert day.start_ms == start
    assert (day.end_ms - day.start_ms) // QUARTER_MS == hours * 4
    assert datetime.fromisoformat(day.local_start).strftime("%Y-%m-%d %H:%M") == f"{date} 00:00"


def test_the_repeated_fall_back_hour_is_two_hours_and_the_skipped_one_none() -> None:
    tz = "Europe/Berlin"
    back = [
        s.local_start for s in slots(parse_local("2026-10-25T01:00", tz), parse_local("2026-10-25T04:00", tz), "1h", tz)
    ]
    assert back == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    forward = [
        s.local_start for s in slots(parse_local("2026-03-29T01:00", tz), parse_local("2026-03-29T04:00", tz), "1h", tz)
    ]
    assert forward == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]


def test_half_hours_in_nepal_start_at_a_quarter_past_in_utc() -> None:
    tz = "Asia/Kathmandu"  # +05:45
    got = slots(parse_local("2026-06-01T10:00", tz), parse_local("2026-06-01T11:00", tz), "30m", tz)
    assert [s.local_start for s in got] == ["2026-06-01T10:00:00+05:45", "2026-06-01T10:30:00+05:45"]
    assert [s.start_ms % 3_600_000 for s in got] == [15 * 60_000, 45 * 60_000]


def test_an_interval_cut_by_the_range_is_returned_whole() -> None:
    tz = "Asia/Kolkata"
    (day,) = slots(parse_local("2026-06-01T13:00", tz), parse_local("2026-06-01T14:00", tz), "1d", tz)
    assert day.start_ms == parse_local("2026-06-01", tz) and day.end_ms == parse_local("2026-06-02", tz)


def test_quality_is_actual_only_when_every_quarter_is() -> None:
    start = parse_local("2026-06-01T10:00", "UTC")
    (hour,) = slots(start, start + 1, "1h", "UTC")
    actual = Quarter(energy_wh=1.0, samples=1)
    full = {start + i * QUARTER_MS: actual for i in range(4)}
    assert sum_quarters(full, hour).quality == "A"
    assert sum_quarters({**full, start + QUARTER_MS: Quarter(energy_wh=1.0, silent_ms=60_000)}, hour).quality == "E"
    assert sum_quarters({start: actual}, hour).quality == "E"  # three quarters without data
    assert sum_quarters({start: actual}, hour, data_until_ms=start + 60_000).quality == "A"  # the rest is future
    assert sum_quarters({}, hour).quality == "N"


@settings(max_examples=60, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    first_day=st.integers(min_value=0, max_value=364),
    days=st.integers(min_value=1, max_value=4),
    energies=st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=64),
)
def test_quarters_sum_to_every_coarser_interval_in_every_zone(
    tz: str, first_day: int, days: int, energies: list[int]
) -> None:
    # Whole-Wh energies, so sums are exact and any regrouping of them must agree to the Wh.
    start = parse_local("2026-01-01", tz) + first_day * 86_400_000
    end = start + days * 86_400_000
    span = slots(start, end, "15m", tz)
    quarters = {s.start_ms: Quarter(energy_wh=float(energies[i % len(energies)])) for i, s in enumerate(span)}
    total = sum(q.energy_wh for q in quarters.values())
    by_every: dict[str, list] = {}
    for every in EVERY:
        got = slots(start, end, every, tz)
        # Contiguous runs of whole quarters, covering the range.
        assert all(a.end_ms == b.start_ms for a, b in zip(got, got[1:], strict=False))
        assert got[0].start_ms <= start and got[-1].end_ms >= end
        assert all((s.end_ms - s.start_ms) % QUARTER_MS == 0 for s in got)
        by_every[every] = got
        inside = [s for s in got if start <= s.start_ms and s.end_ms <= end]
        assert sum(sum_quarters(quarters, s).energy_wh for s in inside) <= total
    # Over the quarters a day holds, hours and half-hours and quarters sum to the day.
    for day in by_every["1d"]:
        if not (start <= day.start_ms and day.end_ms <= end):
            continue
        want = sum_quarters(quarters, day).energy_wh
        for every in ("15m", "30m", "1h"):
            parts = [s for s in by_every[every] if day.start_ms <= s.start_ms < day.end_ms]
            assert parts[0].start_ms == day.start_ms and parts[-1].end_ms == day.end_ms
            assert sum(sum_quarters(quarters, s).energy_wh for s in parts) == want
        allowed = (94, 96, 98) if tz == "Australia/Lord_Howe" else (92, 96, 100)  # Lord Howe shifts by 30 min
        assert (day.end_ms - day.start_ms) // QUARTER_MS in allowed
        local = datetime.fromisoformat(day.local_start)
        assert (local.hour, local.minute) == (0, 0) or tz == "America/Santiago"  # Santiago skips midnight


@pytest.mark.parametrize("text", ["9999-12-31", "1969-12-31T23:59:59Z", "2200-01-02"])
def test_a_range_outside_1970_to_2199_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="outside 1970-2199"):
        parse_local(text, "Pacific/Chatham")
