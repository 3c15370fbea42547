"""Bucket keys, splitting a delta across UTC hours, and one bucket's aggregate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BucketAggregate, day_key, hour_key, split_by_hour
from batcher.buckets import split_by_quarter

HOUR_MS = 3_600_000


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def reference_split(energy_wh: float, start_ms: int, end_ms: int, period_ms: int = HOUR_MS) -> dict[int, float]:
    """Period start -> energy share, by plain overlap arithmetic (independent of the splitters)."""
    span_ms = end_ms - start_ms
    out = {}
    begin_ms = start_ms // period_ms * period_ms
    while begin_ms < end_ms:
        covered_ms = min(end_ms, begin_ms + period_ms) - max(start_ms, begin_ms)
        out[begin_ms] = energy_wh * covered_ms / span_ms
        begin_ms += period_ms
    return out


class TestKeys:
    @pytest.mark.parametrize(
        ("text", "hour", "day"),
        [
            ("2026-11-27T13:00:00", "h#2026-11-27T13", "d#2026-11-27"),
            ("2026-11-27T13:59:59.999", "h#2026-11-27T13", "d#2026-11-27"),
            ("2026-11-27T00:00:00", "h#2026-11-27T00", "d#2026-11-27"),
            ("2026-11-27T23:59:59.999", "h#2026-11-27T23", "d#2026-11-27"),
            ("2026-12-31T23:30:00", "h#2026-12-31T23", "d#2026-12-31"),
            ("2027-01-01T00:00:00", "h#2027-01-01T00", "d#2027-01-01"),
        ],
    )
    def test_utc_hour_and_day(self, text: str, hour: str, day: str) -> None:
        assert hour_key(utc_ms(text)) == hour
        assert day_key(utc_ms(text)) == day


class TestSplitByHour:
    def test_within_one_hour_everything_goes_there(self) -> None:
        assert list(split_by_hour(42.0, utc_ms("2026-11-27T13:10"), utc_ms("2026-11-27T13:50"))) == [
            (utc_ms("2026-11-27T13:00"), 42.0)
        ]

    def test_ninety_minutes_across_an_hour_boundary(self) -> None:
        # 12:30 -> 14:00, 300 Wh: 30 of 90 minutes in hour 12, 60 in hour 13, none in 14.
        pieces = dict(split_by_hour(300.0, utc_ms("2026-11-27T12:30"), utc_ms("2026-11-27T14:00")))
        assert pieces == {
            utc_ms("2026-11-27T12:00"): pytest.approx(100.0),
            utc_ms("2026-11-27T13:00"): pytest.approx(200.0),
        }

    def test_three_hours_and_a_quarter(self) -> None:
        # 10:45 -> 13:15 is 150 minutes: 15 / 60 / 60 / 15 of 150 Wh.
        pieces = dict(split_by_hour(150.0, utc_ms("2026-11-27T10:45"), utc_ms("2026-11-27T13:15")))
        assert pieces == {
            utc_ms("2026-11-27T10:00"): pytest.approx(15.0),
            utc_ms("2026-11-27T11:00"): pytest.approx(60.0),
            utc_ms("2026-11-27T12:00"): pytest.approx(60.0),
            utc_ms("2026-11-27T13:00"): pytest.approx(15.0),
        }

    def test_interval_starting_on_the_hour(self) -> None:
        pieces = dict(split_by_hour(90.0, utc_ms("2026-11-27T13:00"), utc_ms("2026-11-27T14:30")))
        assert pieces == {
            utc_ms("2026-11-27T13:00"): pytest.approx(60.0),
            utc_ms("2026-11-27T14:00"): pytest.approx(30.0),
        }

    def test_empty_interval_goes_to_the_hour_of_its_end(self) -> None:
        ts_ms = utc_ms("2026-11-27T13:20")
        assert list(split_by_hour(5.0, ts_ms, ts_ms)) == [(utc_ms("2026-11-27T13:00"), 5.0)]

    def test_backwards_interval_goes_to_the_hour_of_its_end(self) -> None:
        pieces = list(split_by_hour(5.0, utc_ms("2026-11-27T15:00"), utc_ms("2026-11-27T13:20")))
        assert pieces == [(utc_ms("2026-11-27T13:00"), 5.0)]


@settings(max_examples=200, deadline=None)
@given(
    energy_wh=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    start_ms=st.integers(min_value=utc_ms("2026-01-01T00:00"), max_value=utc_ms("2027-01-01T00:00")),
    span_ms=st.integers(min_value=1, max_value=3 * 24 * HOUR_MS),
    by_quarter=st.booleans(),
)
def test_pieces_sum_to_the_delta_and_follow_covered_time(
    energy_wh: float, start_ms: int, span_ms: int, by_quarter: bool
) -> None:
    end_ms = start_ms + span_ms
    split, period_ms = (split_by_quarter, 900_000) if by_quarter else (split_by_hour, HOUR_MS)
    pieces = list(split(energy_wh, start_ms, end_ms))
    expected = reference_split(energy_wh, start_ms, end_ms, period_ms)

    hours = [hour_ms for hour_ms, _ in pieces]
    assert hours == sorted(expected)  # one piece per covered hour, in order, no empty hour
    for hour_ms, share_wh in pieces:
        assert share_wh == pytest.approx(expected[hour_ms], rel=1e-9, abs=1e-6)
        assert share_wh >= -1e-6
    assert sum(share for _, share in pieces) == pytest.approx(energy_wh, rel=1e-12, abs=1e-9)


class TestBucketAggregate:
    def test_samples_with_and_without_power(self) -> None:
        agg = BucketAggregate()
        agg.add_sample(2_000, 100.0)
        agg.add_sample(1_000, None)
        agg.add_sample(3_000, 300.0)
        assert agg.samples == 3
        assert agg.power_samples == 2
        assert agg.power_sum_w == 400.0
        assert agg.power_max_w == 300.0
        assert (agg.first_ts_ms, agg.last_ts_ms) == (1_000, 3_000)

    def test_merge_adds_counts_and_keeps_extremes(self) -> None:
        a = BucketAggregate(
            energy_wh=1.5,
            samples=2,
            power_samples=1,
            power_sum_w=10.0,
            power_max_w=10.0,
            first_ts_ms=100,
            last_ts_ms=200,
            resets=1,
        )
        b = BucketAggregate(energy_wh=2.0, samples=1, first_ts_ms=50, last_ts_ms=150, glitches=2, jumps=3)
        merged = a.merge(b)
        assert merged == BucketAggregate(
            energy_wh=3.5,
            samples=3,
            power_samples=1,
            power_sum_w=10.0,
            power_max_w=10.0,
            first_ts_ms=50,
            last_ts_ms=200,
            resets=1,
            glitches=2,
            jumps=3,
        )
        assert a.energy_wh == 1.5 and b.energy_wh == 2.0

    def test_dict_round_trip_drops_unknowns_and_restores_types(self) -> None:
        agg = BucketAggregate(energy_wh=3.25, samples=4, power_max_w=None, first_ts_ms=7, jumps=1)
        item = agg.to_dict()
        assert "power_max_w" not in item and "last_ts_ms" not in item
        # A store hands numbers back as strings or decimals; from_dict restores the types.
        restored = BucketAggregate.from_dict({k: str(v) for k, v in item.items()})
        assert restored == agg
        assert isinstance(restored.samples, int) and isinstance(restored.energy_wh, float)
