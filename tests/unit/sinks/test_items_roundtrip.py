"""What the stores write to DynamoDB reads back as it was: ``encode_item`` then ``decode_item``.

``sinks.dynamo`` promises plain values (str, int, float, bool, maps, lists) in, the same out,
integral numbers as int and the others as float, and that a value written, read and written
again is bit-for-bit stable. The domain here is what the stores can write: finite floats of
validated readings and their sums (well below 1e15), -0.0 included; ints of counters and
times; strings that are UTF-8; maps without None (a None attribute is not stored); lists that
may hold None (the live entries' missing power).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import BucketAggregate
from batcher.ledger import Live
from sinks.aggregates import bucket_item
from sinks.dynamo import decode_item, encode_item
from sinks.live import _wire_list, entry, parse_entry
from sinks.position import position_marker

EXAMPLES = settings(max_examples=200, deadline=None)

floats = st.one_of(
    st.just(0.0),
    st.just(-0.0),
    st.floats(min_value=1e-12, max_value=1e15),
    st.floats(min_value=-1e15, max_value=-1e-12),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda x: round(x, 6)),  # micro-units, as decoded
)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
scalars = st.one_of(floats, ints, text, st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.lists(st.one_of(inner, st.none()), max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
items = st.dictionaries(text.filter(bool), values, max_size=6)


def same(a: Any, b: Any) -> bool:
    """Equal in type and value, floats bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a.hex() == b.hex()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    return a == b


def test_same_tells_the_zeros_and_the_types_apart() -> None:
    assert same({"x": [0.0, 1]}, {"x": [0.0, 1]})
    assert not same(-0.0, 0.0) and not same(1, 1.0) and not same(True, 1) and not same([1], [1, 2])


@EXAMPLES
@given(item=items)
def test_an_item_reads_back_as_it_was_written(item: dict[str, Any]) -> None:
    assert same(decode_item(encode_item(item)), item)


@EXAMPLES
@given(item=items)
def test_written_read_and_written_again_is_the_same_wire_form(item: dict[str, Any]) -> None:
    once = encode_item(item)
    assert encode_item(decode_item(once)) == once


aggregates = st.builds(
    BucketAggregate,
    energy_wh=floats.map(abs),
    samples=st.integers(0, 10**6),
    power_samples=st.integers(0, 10**6),
    power_sum_w=floats.map(abs),
    power_max_w=st.none() | floats.map(abs),
    first_ts_ms=st.none() | st.integers(0, 2**45),
    last_ts_ms=st.none() | st.integers(0, 2**45),
    resets=st.integers(0, 50),
    glitches=st.integers(0, 50),
    jumps=st.integers(0, 50),
    clock_steps=st.integers(0, 50),
    seq_restarts=st.integers(0, 50),
    seq_conflicts=st.integers(0, 50),
)


@EXAMPLES
@given(agg=aggregates, seq=st.integers(0, 10**56))
def test_a_bucket_item_reads_back_as_the_same_figures_and_markers(agg: BucketAggregate, seq: int) -> None:
    item = {**bucket_item("box-0001", "h#2026-11-27T13", agg), "w": "shardId-000000000001", "s": position_marker(seq)}
    back = decode_item(encode_item(item))
    assert same(back, item)
    assert BucketAggregate.from_dict(back) == agg


lives = st.builds(
    Live,
    stored=st.integers(0, 10**9),
    ts_ms=st.integers(0, 2**45),
    power_w=st.none() | floats,
    register_wh=floats.map(abs),
    hour=st.just("h#2026-11-27T13"),
    hour_energy_wh=floats.map(abs),
    hour_samples=st.integers(0, 10**6),
    hour_power_max_w=st.none() | floats,
)


@EXAMPLES
@given(live=lives)
def test_a_live_entry_as_the_live_view_writes_it_reads_back_as_the_same_values(live: Live) -> None:
    packed = entry(live)
    [back] = decode_item({"x": _wire_list(packed)}).values()
    assert same(back, packed)
    assert parse_entry(back)["ts_ms"] == live.ts_ms and parse_entry(back)["hour_samples"] == live.hour_samples


@pytest.mark.parametrize("value", [1e16, 2e20, -3e30, 1e38, 1e125])
def test_an_integral_float_written_with_an_exponent_keeps_its_type_and_text(value: float) -> None:
    assert math.isfinite(value)
    once = encode_item({"x": value})
    assert same(decode_item(once), {"x": value}) and encode_item(decode_item(once)) == once
