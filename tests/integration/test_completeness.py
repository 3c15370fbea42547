"""`wattstream completeness` over what the shard processor stored: an outage, then the drain.

A box reads every minute. It loses its broker for two hours and spools; when it is back its
newest reading arrives first and the spool drains after it, in later batches. Before the
drain the two hours are a hole (seq gaps, missing readings, silence, quality E); after it the
device is complete (100 %, A), read back through the command a user runs.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from amazon_kclpy.messages import Record
from click.testing import CliRunner

from consumer.cli import main
from consumer.settings import Settings
from readings.models import to_rfc3339
from tests.integration.test_processor_protocol import BASE_SEQ, Checkpointer, feed, start

pytestmark = pytest.mark.integration

DEVICE = "box-outage"
START_MS = 1_795_000_000_000 - 86_400_000 - 1_795_000_000_000 % 3_600_000  # an hour's start, a day back
MINUTE = 60_000


def message(seqs: range) -> bytes:
    readings = [{"seq": s, "ts": to_rfc3339(START_MS + (s - 1) * MINUTE), "energy_wh": 10.0 * s} for s in seqs]
    return orjson.dumps(
        {"v": 1, "device_id": DEVICE, "thing": DEVICE, "received_ms": START_MS + 86_400_000, "readings": readings}
    )


def records(payloads: list[bytes], first: int) -> list[Record]:
    return [
        Record(
            {
                "data": base64.b64encode(p).decode(),
                "partitionKey": DEVICE,
                "sequenceNumber": str(BASE_SEQ + (first + i) * 1_000_000),
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": START_MS,
            }
        )
        for i, p in enumerate(payloads)
    ]


def completeness() -> dict[str, str]:
    day = to_rfc3339(START_MS)[:10]
    # To just after the newest reading (13:20): no silence at the end of the range.
    end = to_rfc3339(START_MS + 141 * MINUTE)
    result = CliRunner().invoke(main, ["completeness", "--from", day, "--to", end, "--format", "csv"])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    table = [dict(zip(header.split(","), line.split(","), strict=True)) for line in lines]
    return next(row for row in table if row["device_id"] == DEVICE)


def test_an_outage_drained_from_the_spool_ends_complete(pipeline) -> None:
    settings = Settings(max_records=1, max_age_s=3600)  # every record its own batch
    proc = start(settings)
    done = Checkpointer()
    # Minutes 0..9 live, then 10..129 spooled; minute 130 (seq 131) arrives before the spool.
    before = [message(range(k, k + 5)) for k in (1, 6)]
    back = [message(range(131, 132)), message(range(132, 137)), message(range(137, 142))]
    feed(proc, records(before + back, 0), done)
    hole = completeness()
    # 120 seqs missing between minutes 9 and 130, in three hours; 121 silent minutes.
    assert (hole["seq_gaps"], hole["quality"]) == ("120", "E")
    assert int(hole["silent_s"]) == 121 * 60
    assert int(hole["received"]) == 21 and int(hole["expected"]) == 141
    spooled = [message(range(k, k + 10)) for k in range(11, 131, 10)]
    feed(proc, records(spooled, len(before + back)), done)
    proc.shutdown_requested(type("S", (), {"checkpointer": done})())
    drained = completeness()
    assert drained == {**drained, "expected": "141", "received": "141", "completeness_pct": "100.0"}
    assert (drained["seq_gaps"], drained["silent_s"], drained["quality"]) == ("0", "0", "A")
