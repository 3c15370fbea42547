"""``consumer.rebuild`` against the in-memory stores: the consumer's items back, new rules, kills, dry runs.

The consumer here is the real ``ShardProcessor`` driven with the daemon's messages over a
parent shard that splits into two children, so the archive holds three shards whose order
matters for every device.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from amazon_kclpy.dispatch import message_decode

from consumer.lineage import Lineage
from consumer.processor import ShardProcessor
from consumer.protocol import Stores
from consumer.rebuild import Rebuild, Staging
from consumer.rebuild_plan import Params, parse_day
from consumer.settings import Settings
from sinks.live import hash_key
from sinks.memory import Crash, MemoryAggregates, MemoryBackend, MemoryBucketRanges, MemoryTable, crash_at, on_call
from tests.integration.rebuild_corpus import DEVICES, END_DAY, FIRST_DAY, RECEIVED_MS, expected, messages

PARENT, LEFT, RIGHT = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002"
SETTINGS = Settings(max_records=6, max_age_s=3600, live_groups=4)
FIGURES = ("energy_wh", "samples", "resets", "glitches", "power_max_w", "first_ts_ms", "last_ts_ms")


def message(action: str, **fields: Any) -> Any:
    return json.loads(json.dumps({"action": action, **fields}), object_hook=message_decode)


class Checkpointer:
    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        pass


HOUR_MS = 3_600_000


def feed(
    backend: MemoryBackend, shard: str, lineage: Lineage, payloads: list[tuple[str, bytes]], base: int, arrival_ms: int
) -> None:
    """The shard's records, one an hour after ``arrival_ms`` (so its batches fall in several archive hours)."""
    stores = Stores(backend.manifests, backend.archive, backend.snapshots, backend.aggregates, backend.live)
    proc = ShardProcessor(SETTINGS, stores=stores, lineage_of=lambda _: lineage, clock_ms=lambda: RECEIVED_MS)
    message("initialize", shardId=shard, sequenceNumber="TRIM_HORIZON", subSequenceNumber=0).dispatch(None, proc)
    records = [
        {
            "action": "record",
            "data": base64.b64encode(data).decode(),
            "partitionKey": key,
            "sequenceNumber": str(base + i * 1000),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": arrival_ms + i * HOUR_MS,
        }
        for i, (key, data) in enumerate(payloads)
    ]
    message("processRecords", records=records, millisBehindLatest=0).dispatch(Checkpointer(), proc)
    message("shardEnded" if shard == PARENT else "shutdownRequested").dispatch(Checkpointer(), proc)


def left_of(device_id: str) -> bool:
    return hash_key(device_id) < 2**127


def consumed() -> MemoryBackend:
    """The consumer over the corpus: two waves in the parent, the third in its children."""
    backend = MemoryBackend(live_groups=SETTINGS.live_groups)
    waves = messages()
    children = frozenset({LEFT, RIGHT})
    first = [*waves[0], *waves[1]]
    feed(backend, PARENT, Lineage(PARENT, descendants=children), first, 10**20, RECEIVED_MS)
    for n, (child, span) in enumerate(((LEFT, (0, 2**127 - 1)), (RIGHT, (2**127, 2**128 - 1)))):
        lineage = Lineage(child, parents=(PARENT,), ancestors=frozenset({PARENT}), hash_range=span)
        mine = [(d, p) for d, p in waves[2] if left_of(d) == (child == LEFT)]
        feed(backend, child, lineage, mine, 10**21 * (n + 1), RECEIVED_MS + len(first) * HOUR_MS)
    return backend


def closed(table: MemoryTable) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (i["device_id"], i["bucket"]): {name: i.get(name, 0) for name in FIGURES}
        for i in table.items()
        if i["bucket"][:2] in ("h#", "d#")
    }


def params(tolerance_wh: float = 1.0, devices: tuple[str, ...] = (), table: str = "compare") -> Params:
    return Params(
        parse_day(FIRST_DAY), parse_day(END_DAY), devices, table, tolerance_wh, 100_000.0, 86_400_000, 300_000
    )


class Tables:
    """Staging tables that outlive a run, as DynamoDB's do."""

    def __init__(self) -> None:
        self.tables: dict[str, MemoryTable] = {}
        self.opened: list[bool] = []

    def staging(self, fresh: bool) -> Staging:
        self.opened.append(fresh)
        if fresh or "staging" not in self.tables:
            self.tables["staging"] = MemoryTable()
        table = self.tables["staging"]
        return Staging(MemoryAggregates(table), MemoryBucketRanges(table), lambda: self.tables.pop("staging"))


def rebuild(
    backend: MemoryBackend,
    target: MemoryTable,
    p: Params,
    *,
    tables: Tables | None = None,
    archive: Any = None,
    parents: dict | None = None,
    dry_run: bool = False,
) -> Any:
    tables = tables or Tables()
    job = Rebuild(
        p,
        archive=archive or backend.archive,
        checkpoints=None if dry_run else backend.snapshots,
        parents=parents,
        open_staging=tables.staging,
        target=MemoryBucketRanges(target),
        workers=2,
    )
    return job.run()


@pytest.fixture(scope="module")
def corpus() -> MemoryBackend:
    return consumed()


def test_the_consumer_stores_what_the_plain_reference_says(corpus) -> None:
    stored = closed(corpus.aggregates_table)
    want = expected(1.0)
    assert stored and set(stored) <= set(want)
    for key, figures in stored.items():
        assert figures["samples"] == want[key]["samples"], key
        assert figures["energy_wh"] == pytest.approx(want[key]["energy_wh"], abs=1e-6), key
        assert (figures["resets"], figures["glitches"]) == (want[key]["resets"], want[key]["glitches"]), key


@pytest.mark.parametrize("parents", [None, {LEFT: (PARENT,), RIGHT: (PARENT,)}], ids=["unlisted", "listed"])
def test_a_rebuild_with_the_same_rules_gives_the_consumer_s_items_back(corpus, parents) -> None:
    target = MemoryTable()
    outcome = rebuild(corpus, target, params(), parents=parents)
    assert closed(target) == closed(corpus.aggregates_table)  # bit for bit: the same code, the same batches
    assert outcome.devices == len(DEVICES) and outcome.written == len(closed(target)) and not outcome.refused


def test_a_rebuild_into_the_live_table_with_the_same_rules_changes_nothing(corpus) -> None:
    backend = consumed()
    before = backend.contents()["aggregates"]
    outcome = rebuild(backend, backend.aggregates_table, params(table="live"))
    assert outcome.differences == [] and outcome.written == outcome.deleted == 0
    assert backend.contents()["aggregates"] == before


def test_a_lower_tolerance_changes_exactly_the_intervals_the_rules_say(corpus) -> None:
    target = MemoryTable()
    rebuild(corpus, target, params(tolerance_wh=0.5))
    old, new, want = closed(corpus.aggregates_table), closed(target), expected(0.5)
    assert set(new) == set(old)
    changed = {key for key in new if new[key] != old[key]}
    assert changed == {
        ("box-r02", "h#2026-11-17T22"),
        ("box-r02", "d#2026-11-17"),
        ("box-r04", "h#2026-11-18T00"),
    }
    for key in new:
        assert new[key]["energy_wh"] == pytest.approx(want[key]["energy_wh"], abs=1e-6), key
        assert (new[key]["resets"], new[key]["glitches"]) == (want[key]["resets"], want[key]["glitches"]), key
    assert new[("box-r02", "h#2026-11-17T22")]["energy_wh"] - old[("box-r02", "h#2026-11-17T22")]["energy_wh"] == (
        pytest.approx(2950.0, abs=1e-6)
    )


def test_only_the_range_and_the_devices_asked_for_are_written(corpus) -> None:
    target = MemoryTable()
    p = Params(
        parse_day("2026-11-18"), parse_day(END_DAY), ("box-r03",), "compare", 1.0, 100_000.0, 86_400_000, 300_000
    )
    rebuild(corpus, target, p)
    want = {k: v for k, v in closed(corpus.aggregates_table).items() if k[0] == "box-r03" and "2026-11-18" in k[1]}
    assert want and closed(target) == want


def uninterrupted(p: Params) -> dict:
    target = MemoryTable()
    rebuild(consumed(), target, p)
    return closed(target)


@pytest.mark.parametrize(
    ("method", "call"),
    [("get", 1), ("get", 4), ("get", 9), ("write_closed", 2), ("correct", 3)],
)
def test_a_rebuild_killed_midway_and_run_again_ends_with_the_same_items(method: str, call: int) -> None:
    p = params(tolerance_wh=0.5)
    want = uninterrupted(p)
    backend, target, tables = consumed(), MemoryTable(), Tables()
    if method == "get":
        with pytest.raises(Crash):
            rebuild(backend, target, p, tables=tables, archive=crash_at(backend.archive, "get", call=call))
    else:
        original = tables.staging

        def crashing(fresh: bool) -> Staging:
            staging = original(fresh)
            return Staging(crash_at(staging.aggregates, method, call=call), staging.ranges, staging.drop)

        tables.staging = crashing  # type: ignore[method-assign]
        with pytest.raises(Crash):
            rebuild(backend, target, p, tables=tables)
        tables.staging = original  # type: ignore[method-assign]
    assert closed(target) == {}  # the target is only written once every shard is done
    gets = on_call(backend.archive, "get", lambda: None, call=10**9)
    rebuild(backend, target, p, tables=tables, archive=gets)
    assert tables.opened == [True, False]  # the second run resumed the first one's staging
    assert closed(target) == want
    objects = len(backend.archive.keys("raw/"))
    if call > 1:
        assert gets.calls < objects  # the days done before the kill were not read again
    # Done: the staging table and the checkpoints are gone, the manifest says so.
    assert "staging" not in tables.tables
    assert [k for k in backend.bucket.keys("rebuild/") if "/state/" in k] == []


def test_a_finished_rebuild_run_again_starts_afresh_and_gives_the_same_items(corpus) -> None:
    target, tables = MemoryTable(), Tables()
    rebuild(corpus, target, params(), tables=tables)
    first = target.wire_items()
    again = rebuild(corpus, target, params(), tables=tables)
    assert tables.opened == [True, True]
    assert again.differences == [] and target.wire_items() == first


def test_a_dry_run_reports_the_differences_and_writes_nothing(corpus) -> None:
    backend = consumed()
    before = backend.contents()
    outcome = rebuild(backend, backend.aggregates_table, params(tolerance_wh=0.5, table="live"), dry_run=True)
    assert backend.contents() == before
    rows = {(d.device_id, d.bucket): d for d in outcome.differences}
    assert set(rows) == {("box-r02", "h#2026-11-17T22"), ("box-r02", "d#2026-11-17"), ("box-r04", "h#2026-11-18T00")}
    hour = rows[("box-r02", "h#2026-11-17T22")]
    assert hour.rebuilt["energy_wh"] - hour.stored["energy_wh"] == pytest.approx(2950.0, abs=1e-6)
    assert hour.rebuilt["samples"] == hour.stored["samples"] == 12
    assert rows[("box-r04", "h#2026-11-18T00")].rebuilt["glitches"] == 1


def test_an_item_the_consumer_wrote_after_the_archive_read_is_left_alone() -> None:
    backend = consumed()
    item = next(i for i in backend.aggregates_table.items() if i["bucket"] == "h#2026-11-17T22")
    later = {**item, "energy_wh": 1.0, "s": "9" * 64}
    from sinks.dynamo import encode_item

    backend.aggregates_table.put(encode_item(later))
    outcome = rebuild(backend, backend.aggregates_table, params(table="live"))
    assert outcome.kept == 1
    stored = {(i["device_id"], i["bucket"]): i for i in backend.aggregates_table.items()}
    assert stored[(item["device_id"], item["bucket"])]["energy_wh"] == 1.0
