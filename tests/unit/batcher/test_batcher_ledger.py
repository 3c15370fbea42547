"""settle: which buckets a batch closes, corrects or leaves open, and the live values.

Bucket keys and times are written by hand; the rule under test is "a bucket is written once,
when its device's time base passes its end; later contributions are corrections".
"""

from __future__ import annotations

import pytest

from batcher.ledger import Ledger, bucket_end_ms, settle

DEV = "box-0001"


def run(batches, reading, batch):
    """Each batch through compute_batch and settle, carrying states and ledgers."""
    states: dict = {}
    ledgers: dict = {}
    out = []
    for readings in batches:
        result = batch([reading(*r[:3], power_w=r[3] if len(r) > 3 else None) for r in readings], states)
        settled = settle(result, ledgers)
        states.update(result.states)
        ledgers.update({d: Ledger.from_dict(x.to_dict()) for d, x in settled.ledgers.items()})
        out.append(settled)
    return out


def test_bucket_ends() -> None:
    assert bucket_end_ms("h#2026-11-27T13") - bucket_end_ms("h#2026-11-27T12") == 3_600_000
    assert bucket_end_ms("d#2026-11-28") - bucket_end_ms("d#2026-11-27") == 86_400_000
    assert bucket_end_ms("d#2026-11-27") == bucket_end_ms("h#2026-11-27T23")


def test_an_hour_is_written_once_when_the_time_base_passes_its_end(reading, batch) -> None:
    first, second, third = run(
        [
            [(1, "12:10", 1_000), (2, "12:50", 1_040)],
            [(3, "13:10", 1_060)],
            [(4, "13:20", 1_070)],
        ],
        reading,
        batch,
    )
    assert first.closed == {}
    assert set(second.closed) == {(DEV, "h#2026-11-27T12")}
    # 12:50 -> 13:10 is split half and half: hour 12 gets 40 + 10 Wh, two samples.
    assert second.closed[(DEV, "h#2026-11-27T12")].energy_wh == pytest.approx(50)
    assert second.closed[(DEV, "h#2026-11-27T12")].samples == 2
    assert third.closed == {} and third.corrections == {}
    assert set(third.ledgers[DEV].open) == {"h#2026-11-27T13", "d#2026-11-27"}


def test_a_late_reading_for_a_closed_hour_is_a_correction(reading, batch) -> None:
    _, second = run([[(1, "12:10", 1_000), (3, "13:10", 1_060)], [(2, "12:40", 1_030)]], reading, batch)
    assert second.closed == {}
    assert set(second.corrections) == {(DEV, "h#2026-11-27T12")}
    assert second.corrections[(DEV, "h#2026-11-27T12")].samples == 1
    assert second.corrections[(DEV, "h#2026-11-27T12")].energy_wh == 0


def test_a_gap_closes_every_hour_it_spans_at_once(reading, batch) -> None:
    [settled] = run([[(1, "10:30", 1_000), (2, "13:30", 1_300)]], reading, batch)
    assert sorted(b for _, b in settled.closed) == ["h#2026-11-27T10", "h#2026-11-27T11", "h#2026-11-27T12"]
    total = sum(a.energy_wh for a in settled.closed.values()) + settled.ledgers[DEV].open["h#2026-11-27T13"].energy_wh
    assert total == pytest.approx(300)


def test_a_day_closes_at_midnight_with_the_hours_figures(reading, batch) -> None:
    _, second = run([[(1, "23:00", 1_000), (2, "23:50", 1_050)], [(3, "2026-11-28T00:10", 1_070)]], reading, batch)
    day = second.closed[(DEV, "d#2026-11-27")]
    hour = second.closed[(DEV, "h#2026-11-27T23")]
    assert day.energy_wh == pytest.approx(hour.energy_wh) and day.samples == hour.samples == 2


def test_live_values_follow_the_newest_reading_and_the_open_hour(reading, batch) -> None:
    first, second = run(
        [[(1, "12:10", 1_000, 50.0), (2, "12:20", 1_010, 70.0)], [(2, "12:20", 1_010, 70.0)]], reading, batch
    )
    live = first.live[DEV]
    assert (live.ts_ms, live.power_w, live.register_wh, live.hour) == (
        reading(2, "12:20", 0).ts_ms,
        70.0,
        1_010,
        "h#2026-11-27T12",
    )
    assert (live.hour_energy_wh, live.hour_samples, live.hour_power_max_w) == (10, 2, 70.0)
    assert second.live == {}  # a redelivery changes nothing to show


def test_the_ledger_survives_its_dict_form(reading, batch) -> None:
    [settled] = run([[(1, "12:10", 1_000), (2, "13:10", 1_060)]], reading, batch)
    ledger = settled.ledgers[DEV]
    assert Ledger.from_dict(ledger.to_dict()) == ledger
