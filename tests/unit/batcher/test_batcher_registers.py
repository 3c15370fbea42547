"""The meter-register rules, one example each, through compute_batch with hand-computed numbers.

Rules: tolerance 1 Wh, max power 100 kW (so at most 1,666.7 Wh per minute, plus the tolerance).
Times are UTC on 2026-11-27 unless a full date is given.
"""

from __future__ import annotations

import pytest

from batcher import BatchResult

H12, H13, D27 = "h#2026-11-27T12", "h#2026-11-27T13", "d#2026-11-27"


def energies(result: BatchResult) -> dict[str, float]:
    """Bucket -> energy of every bucket the batch touched (one device per test)."""
    return {bucket: agg.energy_wh for (_, bucket), agg in result.aggregates.items()}


def flags(result: BatchResult, bucket: str = D27) -> tuple[int, int, int]:
    """(resets, glitches, jumps) of one bucket, zeros if the batch did not touch it."""
    agg = next((a for (_, b), a in result.aggregates.items() if b == bucket), None)
    return (0, 0, 0) if agg is None else (agg.resets, agg.glitches, agg.jumps)


class TestBaseline:
    def test_first_reading_ever_counts_nothing(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 123_456.7)])
        assert energies(result) == {H12: 0.0, D27: 0.0}
        assert result.stats.energy_wh == 0.0
        assert flags(result) == (0, 0, 0)

    def test_each_device_has_its_own_baseline(self, reading, batch) -> None:
        result = batch(
            [
                reading(1, "12:00", 1_000, device_id="a"),
                reading(1, "12:00", 9_000, device_id="b"),
                reading(2, "12:30", 1_010, device_id="a"),
            ]
        )
        assert result.aggregates[("a", H12)].energy_wh == pytest.approx(10.0)
        assert result.aggregates[("b", H12)].energy_wh == 0.0


class TestDelta:
    def test_delta_within_a_batch(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000), reading(2, "12:30", 1_200)])
        assert energies(result) == {H12: pytest.approx(200.0), D27: pytest.approx(200.0)}

    def test_delta_from_the_previous_batch(self, reading, batches) -> None:
        first, second = batches([[reading(1, "12:00", 1_000)], [reading(2, "12:30", 1_150)]])
        assert energies(first) == {H12: 0.0, D27: 0.0}
        assert energies(second) == {H12: pytest.approx(150.0), D27: pytest.approx(150.0)}

    def test_the_largest_plausible_rise_counts(self, reading, batch) -> None:
        # 100 kW for one hour: 100,000 Wh is the limit and still counted.
        result = batch([reading(1, "12:00", 1_000), reading(2, "13:00", 101_000)])
        assert energies(result)[H12] == pytest.approx(100_000.0)
        assert flags(result) == (0, 0, 0)


class TestNoise:
    def test_small_decrease_counts_nothing_and_keeps_the_higher_reference(self, reading, batch) -> None:
        # 1000 at 12:50, noise 999.2 at 13:00, 1003 at 13:20: 3 Wh over 12:50..13:20 (1 + 2),
        # not 3.8 from the noisy value.
        result = batch([reading(1, "12:50", 1_000), reading(2, "13:00", 999.2), reading(3, "13:20", 1_003)])
        assert energies(result) == {H12: pytest.approx(1.0), H13: pytest.approx(2.0), D27: pytest.approx(3.0)}
        assert flags(result) == (0, 0, 0)

    def test_decrease_of_exactly_the_tolerance_is_noise(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 999), reading(3, "12:20", 1_000)])
        assert energies(result)[D27] == 0.0
        assert flags(result) == (0, 0, 0)

    def test_decrease_above_the_tolerance_is_not_noise(self, reading, batch) -> None:
        # 998.5 is suspect; 999 continues from it, so it was a reset of a 998.5 Wh new cycle.
        result = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 998.5), reading(3, "12:20", 999)])
        assert flags(result) != (0, 0, 0)


class TestGlitch:
    def test_drop_and_return_counts_only_the_rise_over_the_old_value(self, reading, batch) -> None:
        # x=1000 at 12:40, 0 at 12:50, x+30 at 13:10: 30 Wh over 12:40..13:10 -> 20 / 10.
        result = batch([reading(1, "12:40", 1_000), reading(2, "12:50", 0), reading(3, "13:10", 1_030)])
        assert energies(result) == {H12: pytest.approx(20.0), H13: pytest.approx(10.0), D27: pytest.approx(30.0)}
        assert flags(result, H12) == (0, 1, 0)  # flagged at the low reading's time
        assert flags(result, H13) == (0, 0, 0)

    def test_return_to_exactly_the_old_value_counts_nothing(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 0), reading(3, "12:20", 1_000)])
        assert energies(result)[D27] == 0.0
        assert flags(result) == (0, 1, 0)

    def test_later_readings_continue_from_the_old_value(self, reading, batch) -> None:
        result = batch(
            [
                reading(1, "12:00", 1_000),
                reading(2, "12:10", 0),
                reading(3, "12:20", 1_010),
                reading(4, "12:30", 1_015),
            ]
        )
        assert energies(result)[D27] == pytest.approx(15.0)


class TestReset:
    def test_new_cycle_counts_from_zero(self, reading, batch) -> None:
        # 5000 at 12:50; reset: 4 at 13:10 (4 Wh over 12:50..13:10 -> 2 / 2); 10 at 13:20 (+6 in 13).
        result = batch([reading(1, "12:50", 5_000), reading(2, "13:10", 4), reading(3, "13:20", 10)])
        assert energies(result) == {H12: pytest.approx(2.0), H13: pytest.approx(8.0), D27: pytest.approx(10.0)}
        assert flags(result, H13) == (1, 0, 0)
        assert flags(result, H12) == (0, 0, 0)

    def test_reset_to_zero(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 5_000), reading(2, "12:10", 0), reading(3, "12:20", 7)])
        assert energies(result)[D27] == pytest.approx(7.0)
        assert flags(result) == (1, 0, 0)

    def test_implausible_new_cycle_value_is_a_jump(self, reading, batch) -> None:
        # 3000 Wh cannot have been used in the one minute since the old reading.
        result = batch([reading(1, "12:00", 5_000), reading(2, "12:01", 3_000), reading(3, "12:02", 3_010)])
        assert energies(result)[D27] == pytest.approx(10.0)
        assert flags(result) == (1, 0, 1)


class TestJump:
    def test_register_that_stays_up_counts_only_what_follows(self, reading, batch) -> None:
        result = batch(
            [
                reading(1, "12:00", 1_000),
                reading(2, "12:01", 1_000_000),
                reading(3, "12:02", 1_000_500),
            ]
        )
        assert energies(result)[D27] == pytest.approx(500.0)
        assert flags(result) == (0, 0, 1)

    def test_spike_that_comes_back_is_a_jump_and_counts_nothing(self, reading, batch) -> None:
        # 1000 -> 1,000,000 -> 1010: the spike is not energy; 10 Wh over 12:00..12:02 is.
        result = batch(
            [
                reading(1, "12:00", 1_000),
                reading(2, "12:01", 1_000_000),
                reading(3, "12:02", 1_010),
            ]
        )
        assert energies(result)[D27] == pytest.approx(10.0)
        assert flags(result) == (0, 0, 1)

    def test_spike_followed_by_neither_value_is_still_a_jump(self, reading, batch) -> None:
        # The spike is flagged when 0 continues neither 1000 nor 1,000,000; the 0 is then held
        # itself and 1010 comes back to 1000, so the 0 was a glitch.
        result = batch(
            [
                reading(1, "12:00", 1_000),
                reading(2, "12:01", 1_000_000),
                reading(3, "12:02", 0),
                reading(4, "12:03", 1_010),
            ]
        )
        assert energies(result)[D27] == pytest.approx(10.0)
        assert flags(result) == (0, 1, 1)

    def test_rise_in_zero_time_beyond_the_tolerance_is_a_jump(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000), reading(2, "12:00", 1_050), reading(3, "12:10", 1_060)])
        assert energies(result)[D27] == pytest.approx(10.0)
        assert flags(result) == (0, 0, 1)


class TestSuspectAcrossBatches:
    def test_glitch_decided_in_the_next_batch(self, reading, batches) -> None:
        first, second = batches(
            [
                [reading(1, "12:00", 1_000), reading(2, "12:10", 0)],
                [reading(3, "12:20", 1_030)],
            ]
        )
        assert energies(first)[D27] == 0.0
        assert flags(first) == (0, 0, 0)  # undecided yet
        assert energies(second) == {H12: pytest.approx(30.0), D27: pytest.approx(30.0)}
        assert flags(second) == (0, 1, 0)

    def test_reset_decided_in_the_next_batch(self, reading, batches) -> None:
        first, second = batches(
            [
                [reading(1, "12:00", 5_000), reading(2, "12:10", 2)],
                [reading(3, "12:20", 7)],
            ]
        )
        assert energies(first)[D27] == 0.0
        assert energies(second)[D27] == pytest.approx(7.0)
        assert flags(second) == (1, 0, 0)

    def test_suspect_alone_in_its_batch(self, reading, batches) -> None:
        results = batches(
            [
                [reading(1, "12:00", 1_000)],
                [reading(2, "12:01", 1_000_000)],
                [reading(3, "12:02", 1_000_020)],
            ]
        )
        assert [r.stats.energy_wh for r in results] == [0.0, 0.0, pytest.approx(20.0)]
        assert flags(results[2]) == (0, 0, 1)
