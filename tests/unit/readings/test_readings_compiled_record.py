"""The compiled plain record gives exactly what the interpreted decoder gives, or steps aside.

``decode_record`` hands a parsed record to the compiled plain path first (``readings/_plain.pyx``:
the envelope and every reading in one pass). Whatever the document, what it returns must be the
very ``Decoded`` (device, readings, rejections with their reasons, details and indexes) the
decoder returns without it; and what boxes send must take it, or it buys nothing.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import batcher.batch
import readings.decode
from readings import decode_record
from readings.models import MAX_TS_MS
from tests.unit.readings.conftest import make_record, make_wire_reading
from tests.unit.readings.test_decode_never_raises import RECEIVED_MS, documents, dumped
from tests.unit.readings.test_readings_plain_path import one_reading

EXAMPLES = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEYS = st.one_of(st.just("box-0001"), st.none(), st.text(max_size=8))
FALLBACKS = st.one_of(st.just(RECEIVED_MS), st.integers(-(2**64), 2**64), st.sampled_from([0, MAX_TS_MS, 2**62]))


def interpreted(data: bytes, key: str | None, fallback_ms: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(readings.decode, "_compiled_plain_record", None)
        return decode_record(data, fallback_received_ms=fallback_ms, partition_key=key)


def test_the_hot_path_is_compiled_and_built_from_its_source() -> None:
    """``make install`` compiles both; a module older than its source is a stale build. Importing
    them here shows why one would not load (no build, or a class the step no longer knows)."""
    for module in ("readings._plain", "batcher._steps"):
        built = Path(importlib.import_module(module).__file__ or "")
        source = Path(__file__).parents[3] / (module.replace(".", "/") + ".pyx")
        assert built.suffix == ".so", built
        assert built.stat().st_mtime >= source.stat().st_mtime, f"{built} is older than {source}: run `make install`"
    assert readings.decode.COMPILED and batcher.batch.COMPILED


@EXAMPLES
@given(doc=documents(), ascii_only=st.booleans(), key=KEYS, fallback_ms=FALLBACKS)
def test_any_document_decodes_as_without_the_compiled_record(
    doc: Any, ascii_only: bool, key: str | None, fallback_ms: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dumped(doc, ascii_only)
    assert decode_record(data, fallback_received_ms=fallback_ms, partition_key=key) == interpreted(
        data, key, fallback_ms, monkeypatch
    )


@EXAMPLES
@given(
    readings=st.lists(one_reading, min_size=1, max_size=6),
    envelope=st.fixed_dictionaries(
        {},
        optional={
            "v": st.sampled_from([1, 1.0, True, 2, "1", None]),
            "thing": st.sampled_from(["box-0001", "box-0002", "box 0001", "", "box-0001\n", "x" * 129, "b\u00f6x"]),
            "received_ms": st.one_of(
                st.sampled_from([RECEIVED_MS, -1, MAX_TS_MS, MAX_TS_MS + 1, True, None, float(RECEIVED_MS), "1"]),
                st.integers(RECEIVED_MS - 10**9, RECEIVED_MS + 10**9),
            ),
        },
    ),
    key=KEYS,
)
@example(readings=[make_wire_reading()], envelope={}, key="box-0001")
def test_records_with_odd_envelopes_decode_as_without_the_compiled_record(
    readings: list[Any], envelope: dict[str, Any], key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(make_record(*readings, received_ms=RECEIVED_MS)) | envelope
    data = json.dumps(doc, allow_nan=True).encode()
    assert decode_record(data, fallback_received_ms=RECEIVED_MS, partition_key=key) == interpreted(
        data, key, RECEIVED_MS, monkeypatch
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seqs=st.lists(st.integers(0, 10**6), min_size=1, max_size=60, unique=True))
def test_what_boxes_send_takes_the_compiled_record(seqs: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_record(*[make_wire_reading(seq=seq) for seq in seqs], received_ms=RECEIVED_MS)
    taken: list[Any] = []
    compiled = readings.decode._compiled_plain_record
    assert compiled is not None

    def counting(*args: Any) -> Any:
        taken.append(result := compiled(*args))
        return result

    monkeypatch.setattr(readings.decode, "_compiled_plain_record", counting)
    decoded = decode_record(data, fallback_received_ms=RECEIVED_MS, partition_key="box-0001")
    assert taken and taken[0] is not None
    assert [r.seq for r in decoded.readings] == seqs and not decoded.rejections
