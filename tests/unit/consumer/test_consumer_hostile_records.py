"""Whatever a box, the network or another producer puts on the stream, one record is one record.

A property-based fuzz drives whole records through the consumer's path: decode, the batch
computation over several batches with state carried through the store's own encoding, the items
the store would write and the archive lines. It must never raise, never build an item DynamoDB
would refuse (``sinks.limits`` states its rules) and keep memory per record bounded.

``WATTSTREAM_FUZZ_EXAMPLES`` sets the number of examples (``make fuzz`` runs many more).
"""

from __future__ import annotations

import json
import os
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher import RegisterRules, compute_batch
from batcher.ledger import settle
from consumer.processor import MAX_REJECTIONS_LISTED, PendingRecord
from consumer.protocol import ShardMemory
from readings import Reason, decode_record, to_rfc3339
from readings.decode import MAX_READINGS, MAX_RECORD_BYTES
from sinks.aggregates import bucket_item
from sinks.archive import decode_lines, encode_lines
from sinks.dynamo import decode_item, encode_item
from sinks.limits import refusals
from sinks.live import _wire_list, device_attr, entry, group_of, live_key, marker_attr
from sinks.position import position_marker
from sinks.snapshot import decode_snapshot, encode_snapshot

RECEIVED_MS = 1_795_784_700_000  # 2026-11-27T13:05:00Z
SHARD = "shardId-000000000001"
RULES = RegisterRules()
FUZZ = settings(
    max_examples=int(os.environ.get("WATTSTREAM_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---- what a hostile producer can put in a record ----------------------------------------------

odd_ids = st.sampled_from(
    [
        "box-0001",
        "box-0002",
        "",
        "box/1",
        "box#1",
        "b\x00x",
        "b\nx",
        "b\ud800",
        "Ьox-0001",
        "x" * 129,
        "x" * 3000,
        "wattstream-bridge",
        "a.b",
        "..",
        "box 1",
    ]
)
ids = st.one_of(odd_ids, st.text(max_size=12), st.from_regex(r"[A-Za-z0-9:_-]{1,16}", fullmatch=True))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 2**64, 10**38, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e7),
)
offsets_ms = st.one_of(
    st.integers(min_value=-40 * 86_400_000, max_value=10 * 60_000),
    st.integers(min_value=-3_600_000, max_value=0),
)
zones = st.sampled_from(["Z", "+00:00", "+05:30", "-23:59", "+14:00", ""])


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 0:
        return draw(st.text(max_size=30))
    if kind == 1:
        return draw(numbers)
    text = to_rfc3339(RECEIVED_MS + draw(offsets_ms))
    zone = draw(zones)
    return text if zone == "Z" else text[:-1] + zone


scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
readings = st.fixed_dictionaries(
    {},
    optional={
        "seq": st.one_of(numbers, st.integers(min_value=0, max_value=50), json_values),
        "ts": timestamps(),
        "energy_wh": numbers,
        "power_w": numbers,
        "voltage_v": numbers,
        "current_a": numbers,
        "pf": st.one_of(numbers, st.floats(min_value=-1, max_value=1)),
    },
)
# Mostly plausible readings so the batch computation sees valid ones too.
plausible = st.builds(
    lambda seq, offset, energy: {"seq": seq, "ts": to_rfc3339(RECEIVED_MS + offset), "energy_wh": energy},
    st.integers(min_value=0, max_value=60),
    offsets_ms,
    st.floats(min_value=0, max_value=1e6),
)


@st.composite
def records(draw: st.DrawFn) -> tuple[str, bytes]:
    """(partition key, record bytes)."""
    device = draw(ids)
    thing = device if draw(st.integers(0, 4)) else draw(ids)
    doc: dict[str, Any] = {
        "v": draw(st.sampled_from([1, 1, 1, 1, 2, True, "1", None])),
        "device_id": device,
        "thing": thing,
        "received_ms": draw(st.one_of(st.just(RECEIVED_MS), numbers)),
        "readings": draw(st.lists(st.one_of(plausible, plausible, readings, json_values), max_size=12)),
    }
    for key in draw(st.sets(st.sampled_from(list(doc)), max_size=1)):
        del doc[key]
    data = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    mangle = draw(st.integers(min_value=0, max_value=9))
    if mangle == 0 and data:
        data = data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    elif mangle == 1:
        depth = draw(st.integers(min_value=1, max_value=3000))
        data = b'{"v":1,"x":' + b"[" * depth + b"]" * depth + b"}"
    elif mangle == 2:
        data = data.replace(b"1", draw(st.sampled_from([b"NaN", b"Infinity", b"1e309", b"-0", b"\xff"])), 1)
    key = thing if isinstance(thing, str) and draw(st.integers(0, 5)) else draw(st.text(max_size=10))
    return key, data


# ---- the path of a record, as the consumer takes it ----------------------------------------------


def through_the_store(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Encode for DynamoDB, check the rules DynamoDB enforces, decode as the store reads back."""
    back = []
    for item in items:
        encoded = encode_item(item)
        assert refusals(encoded, partition_key="device_id", sort_key="bucket") == [], item
        back.append(decode_item(encoded))
    return back


def check_batch(pending: list[PendingRecord], prior: tuple[ShardMemory, dict]) -> tuple[ShardMemory, dict]:
    memory, states = prior
    result = compute_batch([r for p in pending for r in p.readings], memory.states, RULES)
    settled = settle(result, memory.ledgers)
    marker = position_marker(pending[-1].sequence_number)
    items = [
        bucket_item(d, b, agg) | {"w": SHARD, "s": marker}
        for (d, b), agg in {**settled.closed, **settled.corrections}.items()
    ]
    through_the_store(items)
    groups: dict[int, dict[str, Any]] = {}
    for device_id, live in settled.live.items():
        assert _wire_list(entry(live)) == encode_item({"x": entry(live)})["x"]
        groups.setdefault(group_of(device_id, 4), live_key(group_of(device_id, 4)) | {marker_attr(SHARD): marker})[
            device_attr(device_id)
        ] = entry(live)
    through_the_store(list(groups.values()))
    after = ShardMemory({**memory.states, **result.states}, {**memory.ledgers, **settled.ledgers})
    # The snapshot round trip is the store's too: the next batch starts from what it reads back.
    doc = decode_snapshot(encode_snapshot(SHARD, pending[-1].sequence_number, after.to_doc()))
    for (device_id, _), agg in result.aggregates.items():
        assert agg.energy_wh >= -1e-6 and agg.samples >= 0, device_id
    return ShardMemory.from_doc(doc, None), states


@FUZZ
@given(stream=st.lists(records(), min_size=1, max_size=12), cut=st.integers(min_value=0, max_value=12))
def test_no_record_raises_or_makes_an_item_the_store_refuses(stream, cut) -> None:
    pending = []
    for n, (key, data) in enumerate(stream, start=1):
        decoded = decode_record(data, fallback_received_ms=RECEIVED_MS, partition_key=key)
        pending.append(PendingRecord(str(n), key, RECEIVED_MS, data, decoded.readings, decoded.rejections))
        assert decoded.readings or decoded.rejections
        for rejection in decoded.rejections:
            assert isinstance(rejection.reason, Reason) and len(rejection.detail) <= 200
            rejection.detail.encode("ascii")
    memory = (ShardMemory(), {})
    for part in (pending[:cut], pending[cut:]):
        if part:
            memory = check_batch(part, memory)

    raw = [p.raw_line(SHARD) for p in pending]
    dead = [line for p in pending if (line := p.dead_letter_line(SHARD)) is not None]
    assert decode_lines(encode_lines(raw)) == raw
    assert len(decode_lines(encode_lines(dead))) == len(dead) == sum(1 for p in pending if p.rejections)


# ---- memory per record ---------------------------------------------------------------------------


def _peak_bytes(data: bytes) -> tuple[int, PendingRecord]:
    tracemalloc.start()
    try:
        decoded = decode_record(data, fallback_received_ms=RECEIVED_MS, partition_key="box-0001")
        pending = PendingRecord("1", "box-0001", RECEIVED_MS, data, decoded.readings, decoded.rejections)
        encode_lines([pending.raw_line(SHARD)])
        encode_lines([pending.dead_letter_line(SHARD)])
        return tracemalloc.get_traced_memory()[1], pending
    finally:
        tracemalloc.stop()


def _record(readings_json: bytes) -> bytes:
    return b'{"v":1,"device_id":"box-0001","thing":"box-0001","received_ms":%d,"readings":[%s]}' % (
        RECEIVED_MS,
        readings_json,
    )


def test_a_128_kb_message_of_bare_numbers_is_one_small_dead_letter() -> None:
    data = _record(b",".join([b"1"] * 64_000))
    assert len(data) <= MAX_RECORD_BYTES
    peak, pending = _peak_bytes(data)
    line = pending.dead_letter_line(SHARD)
    assert line["reason"] == Reason.TOO_MANY_READINGS and line["rejections_total"] == 1
    # The record's bytes are stored once; what decoding holds is a small multiple of them.
    assert peak < 40 * len(data), peak


def test_a_record_whose_every_reading_is_rejected_lists_a_few_and_counts_all() -> None:
    bad = b'{"seq":1,"ts":"2026-11-27T13:00:00","energy_wh":1}'  # no offset: rejected
    data = _record(b",".join([bad] * MAX_READINGS))
    peak, pending = _peak_bytes(data)
    line = pending.dead_letter_line(SHARD)
    assert line["rejections_total"] == MAX_READINGS
    assert len(line["rejections"]) == MAX_REJECTIONS_LISTED
    assert line["data"] == data.decode()
    assert peak < 40 * len(data), peak


def test_a_record_over_the_size_limit_is_not_parsed() -> None:
    data = _record(b",".join([b"1"] * 70_000))
    assert len(data) > MAX_RECORD_BYTES
    peak, pending = _peak_bytes(data)
    assert [r.reason for r in pending.rejections] == [Reason.TOO_LARGE]
    assert peak < 40 * len(data), peak


def test_a_decoder_failure_no_rule_foresaw_is_the_record_s_dead_letter(monkeypatch) -> None:
    from types import SimpleNamespace

    from consumer import processor as processor_module
    from consumer.settings import Settings

    def broken(data: bytes, **_: Any) -> None:
        raise RecursionError("deep enough")

    monkeypatch.setattr(processor_module, "decode_record", broken)
    shard = processor_module.ShardProcessor(Settings(), stores=None)
    record = SimpleNamespace(
        binary_data=b"{}", timestamp_millis=RECEIVED_MS, sequence_number="7", partition_key="box-1"
    )
    pending = shard._decode(record)
    assert pending.readings == []
    line = pending.dead_letter_line(SHARD)
    assert (line["reason"], line["sequence_number"], line["data"]) == (Reason.PROCESSING_ERROR, "7", "{}")
