"""The decoder's plain path gives exactly what the wire model gives, or steps aside.

``decode_record`` first tries the plain path (inline checks for the common shape of a reading);
only when some reading is not plainly valid does the wire model judge the record reading by
reading. For any list of readings, whatever each holds, the plain path must either decline
(``None``) or return the very readings and rejections (reasons, details, indexes) the model
returns. And it must not decline what boxes send every minute, or it would buy nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from readings import decode_record, to_rfc3339
from readings.decode import DEFAULT_FUTURE_TOLERANCE_MS, DEFAULT_MAX_AGE_MS, _loads, _model_readings, _plain_readings
from readings.models import MAX_ELECTRICAL, MAX_POWER_W, MAX_REGISTER_WH, MAX_SEQ
from tests.unit.consumer.test_consumer_hostile_records import readings as hostile_readings
from tests.unit.consumer.test_consumer_hostile_records import timestamps as hostile_timestamps
from tests.unit.readings.conftest import make_record, make_wire_reading
from tests.unit.readings.test_decode_never_raises import json_values, spoiled

RECEIVED_MS = 1_795_784_700_000  # 2026-11-27T13:05:00Z
WINDOW = (RECEIVED_MS, RECEIVED_MS - DEFAULT_MAX_AGE_MS, RECEIVED_MS + DEFAULT_FUTURE_TOLERANCE_MS)
EXAMPLES = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- values at and around every edge the model draws ------------------------------------------

RANGES = {
    "seq": (0, MAX_SEQ),
    "energy_wh": (0.0, MAX_REGISTER_WH),
    "power_w": (0.0, MAX_POWER_W),
    "voltage_v": (0.0, MAX_ELECTRICAL),
    "current_a": (0.0, MAX_ELECTRICAL),
    "pf": (-1.0, 1.0),
    "energy_export_wh": (0.0, MAX_REGISTER_WH),
}


def near_edges(name: str) -> st.SearchStrategy[Any]:
    """A value of ``name`` at one of its bounds, a hair or a micro-unit beside it, or with more
    decimals than micro-units keep; an int or a float."""

    @st.composite
    def draw_one(draw: st.DrawFn) -> Any:
        base = draw(st.sampled_from(RANGES[name]))
        nudge = draw(st.sampled_from([0, 1e-7, 4e-7, 5e-7, 6e-7, 1e-6, 2e-6, 0.5, 1]))
        value = base + nudge if draw(st.booleans()) else base - nudge
        kind = draw(st.integers(0, 4))
        if kind == 0:
            return round(value)  # an int
        if kind == 1:
            return round(value, 6)  # a micro-unit value: the inline checks decide it
        if kind == 2:
            return math.nextafter(float(value), draw(st.sampled_from([math.inf, -math.inf])))
        return float(value)

    return draw_one()


decimals = st.builds(
    lambda units, places: units / 10**places, st.integers(-(10**16), 10**16), st.integers(min_value=0, max_value=9)
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=1e14),
    decimals,
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**53, 2**53 + 1, MAX_SEQ, MAX_SEQ + 1, 10**13, 10**13 + 1, -0.0, True, False]),
)
ODD_TIMES = [
    "2026-11-27T13:00:00Z",
    "2026-11-27T13:00:00.123Z",
    "2026-11-27T12:59:59.999Z",
    "2026-11-27t13:00:00z",
    "2026-11-27 13:00:00.123Z",
    "2026-11-27T13:00:00.12Z",
    "2026-11-27T13:00:00.1234Z",
    "2026-11-27T13:00:00+00:00",
    "2026-11-27T14:00:00.000+01:00",
    "2026-11-27T13:00:60.000Z",
    "2026-11-27T13:60:00.000Z",
    "2026-11-27T24:00:00.000Z",
    "2026-11-31T13:00:00.000Z",
    "2026-02-29T13:00:00.000Z",
    "2028-02-29T13:00:00.000Z",
    "0000-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00.000Z",
    "2026-11-27T13:00:00.\u0661\u0662\u0663Z",
    "2026-11-27T1\u0663:00:00.000Z",
    "2026-11-27T13:00:0 .000Z",
    "2026-11-27T13:00:00.00 Z",
    "+026-11-27T13:00:00.000Z",
    "2026-11-27T13:00:00.000ZZ",
    "2026-11-27T13:00:00",
    "1969-12-31T23:59:59.999Z",
    "1900-02-29T00:00:00.000Z",
    "2000-02-29T00:00:00.000Z",
    "2100-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-12-31T23:59:59Z",
    "2026-00-10T00:00:00Z",
    "2026-13-10T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-27T13:00:00.999Z",
    "2026\u201011-27T13:00:00Z",
    "2026-11-27T13:00:00.000\u017a",
]
odd_times = st.sampled_from(ODD_TIMES)
times = st.one_of(
    odd_times,
    st.integers(min_value=-40 * 86_400_000, max_value=10 * 60_000).map(lambda d: to_rfc3339(RECEIVED_MS + d)),
    st.integers(min_value=0, max_value=253_402_300_799_999).map(to_rfc3339),
    st.integers(min_value=-40 * 86_400, max_value=600).map(lambda d: to_rfc3339(RECEIVED_MS + d * 1000)[:19] + "Z"),
    hostile_timestamps(),
)
fields = {name: st.one_of(near_edges(name), near_edges(name), numbers, st.none()) for name in RANGES}
fields["ts"] = times
plausible_readings = st.builds(
    lambda seq, offset, energy, power, pf: make_wire_reading(
        seq=seq, ts=to_rfc3339(RECEIVED_MS + offset), energy_wh=energy, power_w=power, pf=pf
    ),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=-36 * 86_400_000, max_value=6 * 60_000),
    st.one_of(
        st.builds(lambda units, places: units / 10**places, st.integers(0, 10**13), st.integers(0, 6)),
        st.floats(min_value=0, max_value=MAX_REGISTER_WH),
    ),
    st.one_of(st.none(), st.floats(min_value=0, max_value=2e4).map(lambda p: round(p, 1))),
    st.one_of(st.none(), st.floats(min_value=-1, max_value=1)),
)


@st.composite
def edgy_readings(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible reading with one or two of its fields at an edge, odd, or left out."""
    reading = draw(plausible_readings)
    for name in draw(st.sets(st.sampled_from(sorted(fields)), min_size=1, max_size=2)):
        kind = draw(st.integers(0, 7))
        if kind == 0:
            reading.pop(name, None)
        elif kind <= 2 or name == "ts":
            reading[name] = draw(fields[name])
        else:
            reading[name] = draw(near_edges(name))
    return reading


one_reading = st.one_of(
    plausible_readings,
    edgy_readings(),
    edgy_readings(),
    st.fixed_dictionaries({}, optional=fields),
    hostile_readings,
    spoiled(("seq", "ts", "energy_wh", "power_w", "voltage_v", "current_a", "pf")),
    json_values,
)


def through_json(readings: list[Any]) -> list[Any]:
    """The readings as the decoder sees them: parsed back from the bytes a producer would send."""
    return list(_loads(json.dumps(readings, allow_nan=True).encode()))


@EXAMPLES
@given(
    readings=st.one_of(st.lists(one_reading, min_size=1, max_size=6), st.lists(edgy_readings(), min_size=1, max_size=2))
)
@example(readings=[make_wire_reading(energy_wh=-1e-7)])  # rounds to -0.0, which the model takes
@example(readings=[make_wire_reading(pf=1.0000004)])  # rounds to 1.0
@example(readings=[make_wire_reading(energy_wh=0.1234565)])
@example(readings=[make_wire_reading(ts="2026-11-27T13:00:00.000Z", seq=True)])
def test_the_plain_path_agrees_with_the_model_or_steps_aside(readings: list[Any]) -> None:
    parsed = through_json(readings)
    plain = _plain_readings("box-0001", parsed, WINDOW)
    model = _model_readings("box-0001", parsed, WINDOW)
    if plain is not None:
        assert plain == model
        # Floats stay floats: 12 and 12.0 are equal, but the store would write them apart.
        for mine, theirs in zip(plain[0], model[0], strict=True):
            assert [type(v) for v in mine] == [type(v) for v in theirs]


@pytest.mark.parametrize("ts", ODD_TIMES)
def test_every_odd_time_is_read_as_the_model_reads_it(ts: str) -> None:
    """Each time written at an edge, alone in a reading and with a window that holds any time."""
    parsed = through_json([make_wire_reading(ts=ts)])
    window = (RECEIVED_MS, -(2**61), 2**61)
    plain, model = _plain_readings("box-0001", parsed, window), _model_readings("box-0001", parsed, window)
    assert plain is None or plain == model


@settings(max_examples=300, deadline=None)
@given(readings=st.lists(plausible_readings, min_size=1, max_size=60))
def test_what_boxes_send_takes_the_plain_path(readings: list[dict[str, Any]]) -> None:
    readings = [dict(r, energy_wh=round(r["energy_wh"], 3)) for r in readings]
    assert _plain_readings("box-0001", through_json(readings), WINDOW) is not None


@EXAMPLES
@given(readings=st.lists(one_reading, min_size=1, max_size=6), key=st.sampled_from(["box-0001", "box-0002"]))
def test_whole_records_decode_as_through_the_model(readings: list[Any], key: str) -> None:
    """Through ``decode_record``: every rejection has the model's reason, detail and index."""
    data = make_record(*readings, received_ms=RECEIVED_MS)
    decoded = decode_record(data, fallback_received_ms=RECEIVED_MS, partition_key=key)
    if key != "box-0001":
        assert [r.reason for r in decoded.rejections] == ["partition_key_mismatch"]
        return
    assert (decoded.readings, decoded.rejections) == _model_readings("box-0001", through_json(readings), WINDOW)
