"""What one shard's consumer costs at a realistic fleet: DynamoDB units, S3 requests, CPU.

One shard's share of a fleet shape is pushed through the consumer's own commit (decode,
batch computation, manifest, S3 raw object and snapshot, DynamoDB writes, checkpoint) against
moto server running in its own process, so this process's CPU time is the consumer's alone.
Every DynamoDB call is counted and every item sized by DynamoDB's rules (``sinks.limits``):
a write bills max(item before, item after) in started KB, a strongly consistent read the item
in started 4 KB. moto's own capacity figures are not used. The previous per-device store
(``bench.legacy_store``) runs on the same readings in the same run, as the baseline.

Units per 1,000 readings depend on the shape of each box's traffic, not on how many boxes a
shard carries (the live groups hold about 100 boxes whatever the fleet): every shape is
measured on a shard of 2,500 boxes, with live groups for the whole fleet.

An hour of a device is 59 steady flushes and one that closes its hour; the benchmark measures
``--steady`` steady flushes (after one warm-up) and the closing flush, and weighs them so.
Days close once in 24 hours: their writes are added at 1/24 of an hour-closing flush's bucket
writes (a day item is the same size as an hour item).

    .venv/bin/python -m bench.fleet_cost                       # W1, W2 and W3
    .venv/bin/python -m bench.fleet_cost --shape W1 --json units.json
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from amazon_kclpy.messages import Record
from botocore.config import Config

from batcher import FlushTrigger, RegisterRules
from bench.legacy_store import AggregateStore as LegacyStore
from consumer.lineage import Lineage
from consumer.protocol import Committed, ShardMemory, Stores, commit
from consumer.records import PendingRecord
from consumer.tuning import tune_gc
from devstack.loadgen import Fleet
from devstack.localaws import free_port, wait_for_port
from devstack.provision import create_bucket, create_table
from readings import decode_record
from sinks.aggregates import AggregateStore
from sinks.archive import Archive
from sinks.limits import item_size_bytes
from sinks.live import LiveView
from sinks.manifest import ManifestStore
from sinks.snapshot import SnapshotStore

SHAPES = {
    # name: (boxes in the fleet, boxes on the measured shard, reading every s, readings per message, flush s)
    "W1": (10_000, 2_500, 10, 6, 60),
    "W2": (100_000, 2_500, 10, 6, 60),
    "W3": (10_000, 2_500, 1, 10, 60),
}
SHARD = "shardId-000000000000"
TABLE, STATE_TABLE, BUCKET = "bench-aggregates", "bench-state", "bench-raw"
START_MS = int(datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Meter:
    """DynamoDB and S3 calls of one client, with billed units from item sizes."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    written_keys: list[tuple[str, str]] = field(default_factory=list)

    def hook(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.*.*", self._before)
        return client

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        self.calls[name] += 1
        key = params.get("Item") if name == "PutItem" else params.get("Key") if name == "UpdateItem" else None
        if key is not None and "device_id" in key:  # the aggregates table (the manifest is counted apart)
            self.written_keys.append((key["device_id"]["S"], key["bucket"]["S"]))


def _clients(endpoint: str) -> dict[str, Any]:
    # As ``Settings.client`` configures the consumer's clients.
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32, parameter_validation=False
    )
    kwargs = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )
    return {"dynamodb": boto3.client("dynamodb", **kwargs), "s3": boto3.client("s3", **kwargs)}


def _provision(clients: dict[str, Any], suffix: str) -> tuple[str, str, str]:
    table, state, bucket = f"{TABLE}-{suffix}", f"{STATE_TABLE}-{suffix}", f"{BUCKET}-{suffix}"
    create_table(clients["dynamodb"], table, [("device_id", "HASH"), ("bucket", "RANGE")])
    create_table(clients["dynamodb"], state, [("shard_id", "HASH")])
    create_bucket(clients["s3"], bucket, "us-east-1")
    return table, state, bucket


class Checkpointer:
    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        pass


@dataclass
class FlushFigures:
    readings: int = 0
    wru: float = 0.0
    rru: float = 0.0
    writes: int = 0
    s3_puts: int = 0
    cpu_s: float = 0.0

    def add(self, other: FlushFigures, weight: float = 1.0) -> None:
        self.readings += other.readings * weight
        self.wru += other.wru * weight
        self.rru += other.rru * weight
        self.writes += other.writes * weight
        self.s3_puts += other.s3_puts * weight
        self.cpu_s += other.cpu_s * weight


class Sizer:
    """Item sizes as DynamoDB sees them: read back after each flush (not counted)."""

    def __init__(self, client: Any, table: str) -> None:
        self.client, self.table = client, table
        self.sizes: dict[tuple[str, str], int] = {}

    def bill(self, keys: list[tuple[str, str]]) -> float:
        units = 0.0
        for key in keys:
            before = self.sizes.get(key, 0)
            got = self.client.get_item(
                TableName=self.table, Key={"device_id": {"S": key[0]}, "bucket": {"S": key[1]}}, ConsistentRead=True
            ).get("Item")
            after = item_size_bytes(got) if got else before
            self.sizes[key] = after
            units += max(1, math.ceil(max(before, after) / 1024))
        return units

    def read_units(self, keys: list[tuple[str, str]]) -> float:
        return sum(max(1, math.ceil(self.sizes.get(k, 1) / 4096)) for k in keys)


def _flushes(
    fleet: Fleet, shape: tuple[int, int, int, int, int], count: int, first_seq: int, start_ms: int
) -> list[list[Record]]:
    """``count`` flushes of records, each ``flush_s`` of the shard's traffic."""
    _, _, interval_s, per_message, flush_s = shape
    messages_per_flush = flush_s // (interval_s * per_message)
    out, seq, ts = [], first_seq, start_ms
    for _ in range(count):
        records = []
        for _ in range(max(1, messages_per_flush)):
            for device, data in fleet.messages(ts, per_message, ts + per_message * interval_s * 1000):
                seq += 1
                records.append(
                    Record(
                        {
                            "data": base64.b64encode(data).decode(),
                            "partitionKey": device,
                            "sequenceNumber": str(seq),
                            "subSequenceNumber": 0,
                            "approximateArrivalTimestamp": ts + per_message * interval_s * 1000,
                        }
                    )
                )
            ts += per_message * interval_s * 1000
        out.append(records)
    return out


def _decode(records: list[Record]) -> list[PendingRecord]:
    pending = []
    for r in records:
        data = r.binary_data  # as the processor does: once per record
        d = decode_record(data, fallback_received_ms=r.timestamp_millis, partition_key=r.partition_key)
        pending.append(
            PendingRecord(r.sequence_number, r.partition_key, r.timestamp_millis, data, d.readings, d.rejections)
        )
    return pending


def measure(name: str, endpoint: str, steady: int) -> dict[str, Any]:
    shape = SHAPES[name]
    boxes, on_shard, interval_s, per_message, flush_s = shape
    rules = RegisterRules()
    live_groups = max(1, boxes // 100)
    groups_on_shard = max(1, live_groups * on_shard // boxes)
    clients = _clients(endpoint)
    table, state_table, bucket = _provision(clients, name.lower() + str(int(time.time())))
    meter = Meter()
    ddb, s3 = meter.hook(_clients(endpoint)["dynamodb"]), meter.hook(_clients(endpoint)["s3"])
    sizer = Sizer(clients["dynamodb"], table)
    stores = Stores(
        ManifestStore(ddb, state_table),
        Archive(s3, bucket),
        SnapshotStore(s3, bucket),
        AggregateStore(ddb, table),
        LiveView(ddb, table, groups_on_shard),
    )
    claimed = stores.manifests.claim(SHARD, "bench")
    # The devices of one shard; the live groups they fall into are the shard's share of all groups.
    fleet = Fleet(on_shard, interval_ms=interval_s * 1000, seed=7)
    flush_ms = flush_s * 1000
    # Warm-up, steady flushes, then the flush that crosses the top of the hour.
    first_ms = START_MS + 3_600_000 - (steady + 2) * flush_ms
    batches = _flushes(fleet, shape, steady + 2, 10**20, first_ms)
    memory = ShardMemory()
    figures: list[FlushFigures] = []
    for records in batches:
        meter.calls.clear()
        meter.written_keys.clear()
        started = time.process_time()
        pending = _decode(records)
        outcome = commit(
            pending,
            claimed=claimed,
            memory=memory,
            stores=stores,
            lineage=Lineage(SHARD),
            rules=rules,
            checkpointer=Checkpointer(),
            trigger=FlushTrigger.AGE,
        )
        cpu_s = time.process_time() - started
        assert isinstance(outcome, Committed)
        memory = outcome.memory
        keys = list(meter.written_keys)
        wru = sizer.bill(keys) + 1  # + the manifest, an item under 1 KB
        figures.append(
            FlushFigures(
                readings=sum(len(p.readings) for p in pending),
                wru=wru,
                rru=float(outcome.writes.buckets.read_units),
                writes=len(keys) + 1,
                s3_puts=meter.calls.get("PutObject", 0),
                cpu_s=cpu_s,
            )
        )
    steady_figs, closing = figures[1:-1], figures[-1]
    hour = FlushFigures()
    for f in steady_figs:
        hour.add(f, 59 / len(steady_figs))
    hour.add(closing)
    day_share = closing.wru - sum(f.wru for f in steady_figs) / len(steady_figs)
    hour.wru += max(0.0, day_share) / 24
    per_1000 = 1000 / hour.readings
    result = {
        "shape": name,
        "boxes": boxes,
        "boxes_on_shard": on_shard,
        "reading_interval_s": interval_s,
        "readings_per_message": per_message,
        "flush_s": flush_s,
        "live_groups": live_groups,
        "wattstream": {
            "dynamodb_wru_per_1000_readings": round(hour.wru * per_1000, 3),
            "dynamodb_rru_per_1000_readings": round(hour.rru * per_1000, 3),
            "dynamodb_writes_per_1000_readings": round(hour.writes * per_1000, 3),
            "s3_puts_per_1000_readings": round(hour.s3_puts * per_1000, 4),
            "cpu_ms_per_1000_readings": round(hour.cpu_s * 1000 * per_1000, 2),
            "closing_flush_wru": closing.wru,
            "steady_flush_wru": round(sum(f.wru for f in steady_figs) / len(steady_figs), 1),
        },
    }
    return result


def measure_legacy(name: str, endpoint: str, steady: int) -> dict[str, Any]:
    """The previous store on the same shape: its steady flushes (hours close no differently there)."""
    shape = SHAPES[name]
    boxes, on_shard, interval_s, per_message, flush_s = shape
    rules = RegisterRules()
    clients = _clients(endpoint)
    table, _, _ = _provision(clients, "legacy" + name.lower() + str(int(time.time())))
    meter = Meter()
    ddb = meter.hook(_clients(endpoint)["dynamodb"])
    store = LegacyStore(ddb, table, rules)
    sizer = Sizer(clients["dynamodb"], table)
    fleet = Fleet(on_shard, interval_ms=interval_s * 1000, seed=7)
    batches = _flushes(fleet, shape, steady + 1, 10**20, START_MS)
    total = FlushFigures()
    for i, records in enumerate(batches):
        meter.calls.clear()
        meter.written_keys.clear()
        started = time.process_time()
        pending = _decode(records)
        readings = [r for p in pending for r in p.readings]
        read_keys = sorted({(r.device_id, "latest") for r in readings})
        rru_before = sizer.read_units(read_keys)
        result = store.apply(SHARD, records[-1].sequence_number, readings)
        cpu_s = time.process_time() - started
        bucket_keys = [k for k in meter.written_keys if k[1] != "latest"]
        rru = rru_before + sizer.read_units(bucket_keys)
        wru = sizer.bill(list(meter.written_keys))
        if i == 0:
            continue  # warm-up: every item is new
        total.add(FlushFigures(len(readings), wru, rru, result.items_written, 0, cpu_s))
    per_1000 = 1000 / total.readings
    store.close()
    return {
        "dynamodb_wru_per_1000_readings": round(total.wru * per_1000, 3),
        "dynamodb_rru_per_1000_readings": round(total.rru * per_1000, 3),
        "dynamodb_writes_per_1000_readings": round(total.writes * per_1000, 3),
        "cpu_ms_per_1000_readings": round(total.cpu_s * 1000 * per_1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append", help="W1, W2 or W3 (default: all)")
    parser.add_argument("--steady", type=int, default=4, help="steady flushes measured per shape")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    tune_gc()  # the record processor's garbage-collector thresholds
    port = free_port("127.0.0.1")
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 60)
        endpoint = f"http://127.0.0.1:{port}"
        results = []
        for name in args.shape or sorted(SHAPES):
            figures = measure(name, endpoint, args.steady)
            figures["legacy"] = measure_legacy(name, endpoint, min(args.steady, 2))
            figures["per-reading"] = {"dynamodb_wru_per_1000_readings": 1000.0, "dynamodb_rru_per_1000_readings": 0.0}
            results.append(figures)
            _print(figures)
    finally:
        moto.terminate()
        moto.wait()
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"command": "python -m bench.fleet_cost", "shapes": results}, out, indent=2)


def _print(f: dict[str, Any]) -> None:
    print(
        f"\n{f['shape']}: {f['boxes']:,} boxes ({f['boxes_on_shard']:,} on the measured shard), a reading every "
        f"{f['reading_interval_s']} s, {f['readings_per_message']} per message, {f['flush_s']} s flushes, "
        f"{f['live_groups']} live groups"
    )
    rows = [
        ("DynamoDB WRU per 1,000 readings", "dynamodb_wru_per_1000_readings"),
        ("DynamoDB RRU per 1,000 readings", "dynamodb_rru_per_1000_readings"),
        ("DynamoDB writes per 1,000 readings", "dynamodb_writes_per_1000_readings"),
        ("client CPU ms per 1,000 readings", "cpu_ms_per_1000_readings"),
    ]
    print(f"{'figure':<38}{'previous store':>16}{'wattstream':>14}")
    for label, key in rows:
        print(f"{label:<38}{f['legacy'].get(key, float('nan')):>16}{f['wattstream'].get(key, float('nan')):>14}")
    print(f"{'S3 PUTs per 1,000 readings':<38}{'':>16}{f['wattstream']['s3_puts_per_1000_readings']:>14}")


if __name__ == "__main__":
    main()
