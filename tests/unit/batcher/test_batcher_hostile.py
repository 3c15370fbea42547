"""What a broken or malicious box can send: clock steps, seq restarts, spikes, reused seqs.

Each case states the true energy from the registers a well-behaved meter would show; none of
it comes from compute_batch.
"""

from __future__ import annotations

import pytest

from batcher import RegisterRules, compute_batch
from readings.models import MAX_SEQ, Reading

DEV = "box-0001"
T = 1_795_780_000_000  # 2026-11-27T11:46:40Z
MIN = 60_000
HOUR = 3_600_000


def R(seq: int, ts_ms: int, energy_wh: float) -> Reading:
    return Reading(DEV, seq, ts_ms, energy_wh)


def energy(results) -> float:
    return sum(r.stats.energy_wh for r in results)


class TestClockStepBack:
    def test_a_step_back_does_not_lengthen_the_next_span(self, batch) -> None:
        # 1 h back, then +100 kWh in one minute: impossible at 100 kW, so a jump, never counted.
        result = batch([R(1, T, 1000), R(2, T - HOUR, 1000), R(3, T + MIN, 101_000), R(4, T + 2 * MIN, 101_010)])
        assert result.stats.energy_wh == pytest.approx(10.0)
        assert result.stats.flags["clock_step"] == 1
        assert result.stats.flags["jump"] == 1

    def test_alternating_old_and_new_times_count_no_more_than_real_time_allows(self, batch) -> None:
        readings = []
        for seq in range(1, 61):
            ts = T + seq * 1000 if seq % 2 else T - seq * HOUR // 2  # old hours, within 35 days
            readings.append(R(seq, ts, seq * 100_000.0))
        result = batch(readings)
        # The time base never moves back: 59 s of real time at 100 kW at most (plus tolerance).
        newest_ms = max(r.ts_ms for r in readings)
        allowed_wh = 100_000 * (newest_ms - T - 1000) / HOUR + 60 * 1.0
        assert result.stats.energy_wh <= allowed_wh
        # Every clock-stepped reading is placed at the time base: a handful of items, not hundreds.
        assert len(result.aggregates) <= 4
        assert result.stats.flags["clock_step"] == 30

    def test_a_box_catching_up_after_the_step_counts_again(self, batch) -> None:
        stream = [R(1, T, 1000), R(2, T - 10 * MIN, 1000), R(3, T + MIN, 1010), R(4, T + 2 * MIN, 1020)]
        result = batch(stream)
        assert result.stats.energy_wh == pytest.approx(20.0)
        assert result.stats.flags == {"clock_step": 1}
        assert result.states[DEV].newest.ts_ms == T + 2 * MIN


class TestSeqRestart:
    def test_a_wiped_spool_starting_at_seq_1_is_counted(self, batch, batches) -> None:
        before = [R(seq, T + seq * 10_000, 5000 + seq) for seq in range(990, 1001)]
        after = [R(seq, T + 3 * HOUR + seq * 10_000, 6000 + seq) for seq in range(1, 11)]
        first, second = batches([before, after])
        assert second.stats.duplicates == 0 and second.stats.late == 0
        assert second.stats.stored == 10
        # Energy: register 5000 + 1000 -> 6000 + 10, all of it counted.
        assert energy([first, second]) == pytest.approx(6010 - 5990)
        assert second.stats.flags == {"seq_restart": 1}

    def test_a_redelivery_from_before_the_restart_stays_a_duplicate(self, batches) -> None:
        before = [R(seq, T + seq * 10_000, 5000 + seq) for seq in range(1, 11)]
        after = [R(seq, T + 3 * HOUR + seq * 10_000, 6000 + seq) for seq in range(1, 6)]
        results = batches([before, after, [before[3], before[9], after[2]]])
        assert results[2].stats.duplicates == 3
        assert results[2].aggregates == {}

    def test_one_huge_seq_does_not_make_every_later_reading_late(self, batches) -> None:
        results = batches(
            [
                [R(1, T, 1000), R(MAX_SEQ, T + MIN, 1001)],
                [R(seq, T + MIN + seq * 10_000, 1001 + seq) for seq in range(2, 12)],
            ]
        )
        assert results[1].stats.late == 0
        assert energy(results) == pytest.approx(1012 - 1000)

    def test_seq_and_time_disagreeing_gives_the_same_energy_however_the_stream_is_cut(self, batch, batches) -> None:
        stream = [R(10, T, 1000), R(5, T + HOUR, 2000), R(11, T + 2 * HOUR, 4010)]
        whole = batch(stream)
        cut = batches([stream[:1], stream[1:]])
        cut2 = batches([stream[:2], stream[2:]])
        assert whole.stats.energy_wh == pytest.approx(3010)
        assert energy(cut) == energy(cut2) == pytest.approx(whole.stats.energy_wh)


class TestSpikes:
    def test_a_two_reading_spike_is_not_taken_for_a_reset(self, batch) -> None:
        # 50 kWh register; two readings spike 50 kWh higher, an hour apart; then the true value.
        stream = [
            R(1, T, 50_000),
            R(2, T + MIN, 100_000),
            R(3, T + 61 * MIN, 100_001),
            R(4, T + 62 * MIN, 51_000),
            R(5, T + 63 * MIN, 51_010),
        ]
        result = batch(stream)
        assert result.stats.energy_wh == pytest.approx(1_010)
        assert result.stats.flags["glitch"] == 1

    def test_a_glitch_to_zero_lasting_two_readings_counts_only_what_the_meter_shows(self, batch) -> None:
        stream = [R(1, T, 50_000), R(2, T + HOUR, 0), R(3, T + 2 * HOUR, 0), R(4, T + 3 * HOUR, 51_000)]
        result = batch(stream)
        assert result.stats.energy_wh == pytest.approx(1_000)

    def test_a_real_reset_still_counts_the_new_cycle(self, batch) -> None:
        stream = [R(1, T, 50_000), R(2, T + 10 * MIN, 5), R(3, T + 20 * MIN, 15), R(4, T + 30 * MIN, 30)]
        result = batch(stream)
        assert result.stats.energy_wh == pytest.approx(30)
        assert result.stats.flags == {"reset": 1}

    def test_the_anchor_expires(self, reading) -> None:
        rules = RegisterRules(tolerance_wh=1, max_power_w=100_000, anchor_window_ms=2 * HOUR)
        stream = [R(1, T, 50_000), R(2, T + HOUR, 0), R(3, T + 2 * HOUR, 0), R(4, T + 3 * HOUR, 51_000)]
        result = compute_batch(stream, {}, rules)
        # Past the window the climb from 0 is the new cycle's own energy.
        assert result.stats.energy_wh == pytest.approx(51_000)


class TestReusedSeq:
    def test_a_reused_seq_with_another_register_is_flagged(self, batches) -> None:
        results = batches([[R(1, T, 1000), R(2, T + MIN, 1010)], [R(2, T + MIN, 1500)]])
        assert results[1].stats.duplicates == 1
        assert results[1].stats.flags == {"seq_conflict": 1}
        assert results[1].aggregates[(DEV, "h#2026-11-27T11")].seq_conflicts == 1
