"""What range a request means: its defaults in the device's zone and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from api.errors import ApiError
from api.series import MAX_INTERVALS, resolve
from consumer.cli import main


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_by_default_today_from_local_midnight_to_local_midnight_per_quarter() -> None:
    # 23:30 UTC on 28 March 2026 is already the 29th in Berlin, whose clocks go forward that night.
    found = resolve(None, None, None, "Europe/Berlin", now_ms=ms(2026, 3, 28, 23, 30))
    assert (found.start_ms, found.end_ms, found.every) == (ms(2026, 3, 28, 23), ms(2026, 3, 29, 22), "15m")
    assert found.intervals == 92


@pytest.mark.parametrize(
    ("start", "end", "every"),
    [("2026-11-01", "2026-11-08", "1h"), ("2026-01-01", "2026-12-01", "1d"), ("2020-01-01", "2026-01-01", "1mo")],
)
def test_the_default_resolution_follows_the_length(start: str, end: str, every: str) -> None:
    assert resolve(start, end, None, "UTC", now_ms=0).every == every


def test_dates_are_local_midnights_and_instants_are_taken_as_written() -> None:
    found = resolve("2026-11-27", "2026-11-28T06:00:00Z", "1h", "Asia/Kolkata", now_ms=0)
    assert (found.start_ms, found.end_ms) == (ms(2026, 11, 26, 18, 30), ms(2026, 11, 28, 6))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("2026-11-27", None, None, "Nowhere/City"), "unknown time zone"),
        (("2026-11-28", "2026-11-27", None, "UTC"), "after"),
        (("2026-11-27", "2026-11-27", None, "UTC"), "after"),
        (("2026-01-01", "2026-12-01", "15m", "UTC"), f"at most {MAX_INTERVALS}"),
        (("soon", None, None, "UTC"), "neither a date"),
        ((None, None, "2h", "UTC"), "every must be"),
        (("9999-12-31", None, "1d", "UTC"), "outside 1970-2199"),
    ],
)
def test_what_cannot_be_answered_is_refused_saying_why(args, says: str) -> None:
    with pytest.raises(ApiError, match=says):
        resolve(*args, now_ms=ms(2026, 11, 27, 12))


def test_serve_is_a_command_with_examples() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "Examples" in result.output
