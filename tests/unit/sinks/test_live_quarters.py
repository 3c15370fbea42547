"""The open hour's quarters in the live entry: exact sums, exact samples, shares to a thousandth."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batcher.buckets import HOUR_MS, QUARTER_MS, Quarter
from batcher.ledger import Live
from sinks.live import entry, parse_entry

HOUR = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS

quarter = st.builds(
    Quarter,
    energy_wh=st.floats(min_value=0, max_value=50_000, allow_nan=False),
    samples=st.integers(min_value=0, max_value=900),
    export_wh=st.floats(min_value=0, max_value=5_000, allow_nan=False),
)


def live(quarters: list[Quarter], current: int, silent_ms: int = 0) -> Live:
    open_ = [*quarters[: current + 1], *[Quarter() for _ in range(3 - current)]]
    return Live(
        stored=9,
        ts_ms=HOUR + current * QUARTER_MS + 60_000,
        power_w=100.0,
        register_wh=1e6,
        hour="h#x",
        hour_energy_wh=sum(q.energy_wh for q in open_),
        hour_samples=sum(q.samples for q in open_),
        hour_power_max_w=300.0,
        hour_export_wh=sum(q.export_wh for q in open_),
        hour_silent_ms=silent_ms,
        hour_quarters=tuple(open_),
    )


@given(st.lists(quarter, min_size=4, max_size=4), st.integers(min_value=0, max_value=3))
def test_the_open_hours_quarters_read_back_within_a_thousandth_and_add_up_exactly(
    quarters: list[Quarter], current: int
) -> None:
    values = live(quarters, current)
    got = parse_entry(entry(values))["hour_quarters"]
    assert len(got) == 4
    assert sum(q.energy_wh for q in got) == pytest.approx(round(values.hour_energy_wh, 3), abs=1e-6)
    assert sum(q.export_wh for q in got) == pytest.approx(round(values.hour_export_wh, 3), abs=1e-6)
    for i, (want, have) in enumerate(zip(values.hour_quarters, got, strict=True)):
        if i > current:
            assert have == Quarter()
            continue
        assert have.samples == want.samples
        assert have.energy_wh == pytest.approx(want.energy_wh, abs=values.hour_energy_wh / 1000 * (i + 1) + 1e-3)


def test_nothing_is_added_in_the_hours_first_quarter() -> None:
    values = live([Quarter(5.0, 3), Quarter(), Quarter(), Quarter()], 0)
    assert all(not isinstance(v, list) for v in entry(values))
    assert parse_entry(entry(values))["hour_quarters"][0] == Quarter(5.0, 3, 300.0)


def test_a_closed_quarter_without_data_reads_as_none() -> None:
    values = live([Quarter(), Quarter(7.0, 2, 80.0), Quarter(), Quarter()], 1)
    assert entry(values)[-1] == [None]
    got = parse_entry(entry(values))["hour_quarters"]
    assert got[0] == Quarter() and got[1] == Quarter(7.0, 2, 300.0)
