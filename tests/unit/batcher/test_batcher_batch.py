"""compute_batch: bucket figures, hour/day splits, dedup, late readings and persisted state.

Expected numbers are worked out by hand in the comments; times are UTC on 2026-11-27.
"""

from __future__ import annotations

import pytest

from batcher import BucketAggregate, DeviceState, RegisterRules, compute_batch
from batcher.buckets import Quarter

DEV = "box-0001"


class TestBucketFigures:
    def test_samples_power_and_times_per_hour_and_day(self, reading, batch, at_ms) -> None:
        result = batch(
            [
                reading(1, "12:10", 1_000, power_w=100.0),
                reading(2, "12:50", 1_040, power_w=300.0),
                reading(3, "13:05", 1_055),
                reading(4, "13:30", 1_080, power_w=200.0),
            ]
        )
        h12 = result.aggregates[(DEV, "h#2026-11-27T12")]
        h13 = result.aggregates[(DEV, "h#2026-11-27T13")]
        day = result.aggregates[(DEV, "d#2026-11-27")]
        # Energy: 40 in 12:10..12:50; 15 over 12:50..13:05 (10 in hour 12, 5 in 13); 25 in 13.
        # Silence: the 40- and 25-minute steps pass the 15-minute limit; the 15-minute one does not.
        # The cadence comes from that 15-minute step alone, so 25 silent minutes miss 1 reading.
        # Quarters of 12: 12:10-15 5 Wh, two whole quarters of 15, 12:45-50 5 plus 12:50-13:00 10;
        # of 13: 13:00-05 5 plus 13:05-15 10, then 15, and the 13:30 reading opens the third.
        minute = 60_000
        assert h12.quarters == [
            Quarter(pytest.approx(5.0), 1, 100.0, 0.0, 5 * minute),
            Quarter(pytest.approx(15.0), 0, None, 0.0, 15 * minute),
            Quarter(pytest.approx(15.0), 0, None, 0.0, 15 * minute),
            Quarter(pytest.approx(15.0), 1, 300.0, 0.0, 5 * minute),
        ]
        assert h13.quarters == [
            Quarter(pytest.approx(15.0), 1, None, 0.0, 10 * minute),
            Quarter(pytest.approx(15.0), 0, None, 0.0, 15 * minute),
            Quarter(0.0, 1, 200.0, 0.0, 0),
            Quarter(),
        ]
        h12.quarters = h13.quarters = None
        assert h12 == BucketAggregate(
            energy_wh=pytest.approx(50.0),
            samples=2,
            power_samples=2,
            power_sum_w=400.0,
            power_max_w=300.0,
            first_ts_ms=at_ms("12:10"),
            last_ts_ms=at_ms("12:50"),
            silent_ms=40 * 60_000,
        )
        assert h13 == BucketAggregate(
            energy_wh=pytest.approx(30.0),
            samples=2,
            power_samples=1,
            power_sum_w=200.0,
            power_max_w=200.0,
            first_ts_ms=at_ms("13:05"),
            last_ts_ms=at_ms("13:30"),
            silent_ms=25 * 60_000,
            missing=1,
        )
        assert day == BucketAggregate(
            energy_wh=pytest.approx(80.0),
            samples=4,
            power_samples=3,
            power_sum_w=600.0,
            power_max_w=300.0,
            first_ts_ms=at_ms("12:10"),
            last_ts_ms=at_ms("13:30"),
            silent_ms=65 * 60_000,
            missing=1,
        )
        assert set(result.aggregates) == {(DEV, "h#2026-11-27T12"), (DEV, "h#2026-11-27T13"), (DEV, "d#2026-11-27")}

    def test_hour_without_a_reading_gets_energy_but_no_samples(self, reading, batch) -> None:
        # 12:30 -> 14:00, 300 Wh over 90 minutes: 100 in hour 12, 200 in hour 13, 0 in 14.
        result = batch([reading(1, "12:30", 1_000), reading(2, "14:00", 1_300)])
        figures = {b: (a.energy_wh, a.samples) for (_, b), a in result.aggregates.items()}
        assert figures == {
            "h#2026-11-27T12": (pytest.approx(100.0), 1),
            "h#2026-11-27T13": (pytest.approx(200.0), 0),
            "h#2026-11-27T14": (0.0, 1),
            "d#2026-11-27": (pytest.approx(300.0), 2),
        }

    def test_delta_across_midnight_splits_days_too(self, reading, batch) -> None:
        # 23:45 -> 00:15 next day, 60 Wh: 30 before midnight, 30 after.
        result = batch([reading(1, "23:45", 1_000), reading(2, "2026-11-28T00:15", 1_060)])
        energy = {b: a.energy_wh for (_, b), a in result.aggregates.items()}
        assert energy == {
            "h#2026-11-27T23": pytest.approx(30.0),
            "h#2026-11-28T00": pytest.approx(30.0),
            "d#2026-11-27": pytest.approx(30.0),
            "d#2026-11-28": pytest.approx(30.0),
        }

    def test_stats(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 1_010), reading(2, "12:10", 1_010)])
        assert (result.stats.readings, result.stats.stored, result.stats.duplicates) == (3, 2, 1)
        assert result.stats.energy_wh == pytest.approx(10.0)


class TestDedup:
    def test_redelivery_within_a_batch_counts_once(self, reading, batch) -> None:
        once = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 1_010)])
        twice = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 1_010)] * 2)
        assert twice.aggregates == once.aggregates

    def test_redelivery_in_a_later_batch_counts_nothing(self, reading, batches) -> None:
        records = [reading(1, "12:00", 1_000), reading(2, "12:10", 1_010)]
        first, again = batches([records, records])
        assert first.stats.stored == 2
        assert again.aggregates == {}
        assert (again.stats.stored, again.stats.duplicates, again.stats.energy_wh) == (0, 2, 0.0)
        assert again.states[DEV].to_dict() == first.states[DEV].to_dict()

    def test_redelivery_mixed_with_new_readings(self, reading, batches) -> None:
        _, second = batches(
            [
                [reading(1, "12:00", 1_000), reading(2, "12:10", 1_010)],
                [reading(2, "12:10", 1_010), reading(3, "12:20", 1_025)],
            ]
        )
        day = second.aggregates[(DEV, "d#2026-11-27")]
        assert (day.samples, day.energy_wh) == (1, pytest.approx(15.0))

    def test_the_first_of_two_readings_claiming_one_seq_counts_and_the_other_is_a_conflict(
        self, reading, batch
    ) -> None:
        a = reading(1, "12:00", 1_000, power_w=5.0)
        b = reading(1, "12:00", 1_000, power_w=7.0)
        ab, ba = batch([a, b]), batch([b, a])
        assert ab.aggregates[(DEV, "d#2026-11-27")].power_sum_w == 5.0
        assert ba.aggregates[(DEV, "d#2026-11-27")].power_sum_w == 7.0
        for result in (ab, ba):
            assert result.aggregates[(DEV, "d#2026-11-27")].samples == 1
            assert result.stats.duplicates == 1
            assert result.stats.flags == {"seq_conflict": 1}

    def test_an_exact_redelivery_is_no_conflict(self, reading, batch) -> None:
        a = reading(1, "12:00", 1_000, power_w=5.0)
        result = batch([a, a])
        assert result.stats.duplicates == 1 and not result.stats.flags

    def test_dedup_is_per_device(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000, device_id="a"), reading(1, "12:00", 1_000, device_id="b")])
        assert result.stats.stored == 2


class TestLate:
    def test_late_reading_within_one_hour_counts_a_sample_and_moves_no_energy(self, reading, batches) -> None:
        # Seq 3 re-splits the 12:10-12:30 span into two halves of the same hour: the hour and
        # the day keep their energy, only the sample is new.
        first, late, after = batches(
            [
                [reading(1, "12:00", 1_000), reading(2, "12:10", 1_100), reading(4, "12:30", 1_300)],
                [reading(3, "12:20", 1_200)],
                [reading(5, "12:40", 1_400)],
            ]
        )
        assert first.stats.energy_wh == pytest.approx(300.0)
        day = late.aggregates[(DEV, "d#2026-11-27")]
        assert (day.samples, day.energy_wh) == (1, 0.0)
        assert (late.stats.stored, late.stats.late, late.stats.duplicates) == (1, 1, 0)
        # The reference is still the newest reading (seq 4): +100.
        assert after.stats.energy_wh == pytest.approx(100.0)

    def test_late_reading_with_an_odd_register_raises_no_suspicion(self, reading, batches) -> None:
        _, late, after = batches(
            [
                [reading(1, "12:00", 1_000), reading(3, "12:20", 1_200)],
                [reading(2, "12:10", 0)],
                [reading(4, "12:30", 1_250)],
            ]
        )
        assert late.stats.energy_wh == 0.0
        assert after.stats.energy_wh == pytest.approx(50.0)
        assert not after.stats.flags

    def test_late_reading_seen_again_is_a_duplicate(self, reading, batches) -> None:
        *_, again = batches(
            [
                [reading(1, "12:00", 1_000), reading(3, "12:20", 1_200)],
                [reading(2, "12:10", 1_100)],
                [reading(2, "12:10", 1_100)],
            ]
        )
        assert again.aggregates == {}
        assert again.stats.duplicates == 1

    def test_out_of_order_within_one_batch_is_late_as_across_batches(self, reading, batch, batches) -> None:
        # Where the stream is cut must not matter: a reading behind its device's newest is late
        # whether or not the newest came in the same batch.
        stream = [reading(1, "12:00", 1_000), reading(3, "12:20", 1_200), reading(2, "12:10", 1_100)]
        whole = batch(stream)
        first, second = batches([stream[:2], stream[2:]])
        assert whole.stats.late == second.stats.late == 1
        assert whole.stats.energy_wh == first.stats.energy_wh == pytest.approx(200.0)
        assert whole.aggregates[(DEV, "h#2026-11-27T12")].samples == 3


class TestState:
    def test_prior_state_is_not_modified(self, reading) -> None:
        rules = RegisterRules(tolerance_wh=1, max_power_w=100_000)
        prior = compute_batch([reading(1, "12:00", 1_000)], {}, rules).states
        before = prior[DEV].to_dict()
        compute_batch([reading(2, "12:10", 1_010)], prior, rules)
        assert prior[DEV].to_dict() == before

    def test_state_survives_a_dict_round_trip_with_a_held_suspect(self, reading, batch) -> None:
        state = batch([reading(1, "12:00", 1_000), reading(2, "12:10", 0)]).states[DEV]
        item = state.to_dict()
        assert item["suspect"]["kind"] == "decrease"
        assert item["seen"] == [[1, 2]]
        assert DeviceState.from_dict(item).to_dict() == item

    def test_empty_state_item_is_a_new_device(self) -> None:
        assert DeviceState.from_dict(None).to_dict() == {"seen": []}
        assert DeviceState.from_dict({}).newest is None

    def test_only_devices_of_the_batch_get_a_state(self, reading, batch) -> None:
        result = batch([reading(1, "12:00", 1_000, device_id="a")])
        assert set(result.states) == {"a"}

    def test_state_records_newest_reading(self, reading, batch, at_ms) -> None:
        state = batch([reading(2, "12:10", 1_010, power_w=42.0), reading(1, "12:00", 1_000)]).states[DEV]
        assert (state.newest.seq, state.newest.ts_ms, state.newest.energy_wh) == (2, at_ms("12:10"), 1_010)
        assert state.newest_power_w == 42.0
