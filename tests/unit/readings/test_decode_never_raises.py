"""Any JSON document, in any field of the envelope or of a reading, decodes to data, never raises.

Arbitrary bytes are ``test_readings_hostile.test_decoding_any_bytes_never_raises``; whole records
through the consumer's path are ``tests/unit/consumer/test_consumer_hostile_records.py``, whose
envelopes keep a string device id and a list of readings. Here every field, the document
itself included, may be any JSON value: nested, NaN and infinities, huge numbers, lone
surrogates, a list where an object belongs.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from readings import Reason, decode_record, to_rfc3339

RECEIVED_MS = 1_795_784_700_000
ENVELOPE = ("v", "device_id", "thing", "received_ms", "readings")
READING = ("seq", "ts", "energy_wh", "power_w", "voltage_v", "current_a", "pf")
EXAMPLES = settings(max_examples=200, deadline=None)

numbers = st.one_of(
    st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**400]), st.floats(allow_nan=True, allow_infinity=True)
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
plausible = {
    "v": st.just(1),
    "device_id": st.just("box-0001"),
    "thing": st.just("box-0001"),
    "received_ms": st.just(RECEIVED_MS),
    "seq": st.integers(0, 100),
    "ts": st.just(to_rfc3339(RECEIVED_MS - 60_000)),
    "energy_wh": st.floats(0, 1e6),
    "power_w": st.floats(0, 1e4),
    "voltage_v": st.just(230.0),
    "current_a": st.just(2.0),
    "pf": st.just(0.9),
}


@st.composite
def spoiled(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    """The plausible fields; one time in three, one or two of them replaced by any JSON value or left out."""
    doc = {name: draw(plausible[name]) for name in names}
    spoil = draw(st.sets(st.sampled_from(names), min_size=1, max_size=2)) if not draw(st.integers(0, 2)) else set()
    for name in spoil:
        if draw(st.booleans()):
            del doc[name]
        else:
            doc[name] = draw(json_values)
    return doc


@st.composite
def documents(draw: st.DrawFn) -> Any:
    if not draw(st.integers(0, 9)):
        return draw(json_values)  # the document itself: a list, a number, null, ...
    doc = draw(spoiled(ENVELOPE[:-1]))
    if draw(st.integers(0, 4)):
        doc["readings"] = draw(st.lists(st.one_of(spoiled(READING), spoiled(READING), json_values), max_size=5))
    elif draw(st.booleans()):
        doc["readings"] = draw(json_values)
    doc.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))  # fields nobody expects
    return doc


def dumped(doc: Any, ascii_only: bool) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


@EXAMPLES
@given(doc=documents(), ascii_only=st.booleans(), key=st.one_of(st.just("box-0001"), st.text(max_size=8)))
def test_any_document_decodes_to_readings_or_rejections(doc: Any, ascii_only: bool, key: str) -> None:
    decoded = decode_record(dumped(doc, ascii_only), fallback_received_ms=RECEIVED_MS, partition_key=key)
    assert decoded.readings or decoded.rejections
    for rejection in decoded.rejections:
        assert isinstance(rejection.reason, Reason) and len(rejection.detail) <= 200
    for reading in decoded.readings:
        assert reading.device_id == doc["device_id"] == key


def test_the_strategy_reaches_valid_readings_too() -> None:
    """A fuzz that only ever builds refusals would prove little about the path of a good reading."""
    found: list[int] = []

    @settings(max_examples=100, deadline=None)
    @given(doc=documents())
    def count(doc: Any) -> None:
        found.append(
            len(decode_record(dumped(doc, True), fallback_received_ms=RECEIVED_MS, partition_key="box-0001").readings)
        )

    count()
    assert sum(1 for n in found if n) > 10
