"""The processor's hot path against the least any correct processor must do, on the same payloads.

The *baseline* parses each record with ``orjson.loads`` and adds each reading's register to a
per-device-hour sum: no validation, no state, no rules. *wattstream* runs what a shard's
processor runs per record: ``decode_record`` (size limits, envelope, every reading validated)
and ``compute_batch`` over batches of one record per device (a flush of a fleet that sends one
message per device per flush), state carried from batch to batch. Both run in this process on
the same payloads, interleaved, best of ``--repeat`` each, so the machine's noise cancels in the
ratio. The store is left out (``bench.fleet_cost`` measures it).

Shapes: ``60x100`` is 60 readings per record (~6 KB) from 100 devices; ``6x2500`` is W1's
shard, 6 readings per record from 2,500 devices. Run:

    .venv/bin/python -m bench.hot_path [--shape 60x100|6x2500] [--records N] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import orjson

from batcher import DeviceState, compute_batch
from consumer.settings import Settings
from devstack.loadgen import Fleet
from readings import Reading, decode_record

SHAPES = {"60x100": (60, 100), "6x2500": (6, 2500)}
INTERVAL_MS = 10_000
NOW_MS = 1_795_000_000_000


def payloads(per_record: int, devices: int, records: int) -> list[tuple[str, bytes]]:
    """``records`` rule records, one per device in turn, each device's readings consecutive."""
    fleet = Fleet(devices, interval_ms=INTERVAL_MS)
    rounds = -(-records // devices)
    start_ms = NOW_MS - rounds * per_record * INTERVAL_MS
    out: list[tuple[str, bytes]] = []
    for k in range(1, rounds + 1):
        out.extend(fleet.messages(start_ms + k * per_record * INTERVAL_MS, per_record, NOW_MS))
    return out[:records]


def baseline(records: list[tuple[str, bytes]], batch_records: int) -> int:
    """Parse, then sum each reading's register per device and UTC hour."""
    sums: dict[tuple[str, str], float] = {}
    n = 0
    for _, data in records:
        doc = orjson.loads(data)
        device_id = doc["device_id"]
        for r in doc["readings"]:
            key = (device_id, r["ts"][:13])
            sums[key] = sums.get(key, 0.0) + r["energy_wh"]
            n += 1
    return n


def wattstream(records: list[tuple[str, bytes]], batch_records: int) -> int:
    """Decode and validate every record, then compute its batch, as a shard's processor does."""
    rules = Settings().register_rules
    states: dict[str, DeviceState] = {}
    n = 0
    for start in range(0, len(records), batch_records):
        batch: list[Reading] = []
        for key, data in records[start : start + batch_records]:
            batch.extend(decode_record(data, fallback_received_ms=NOW_MS, partition_key=key).readings)
        n += len(batch)
        states = compute_batch(batch, states, rules).states
    return n


def rate(run: Callable[[list[tuple[str, bytes]], int], int], records: list[tuple[str, bytes]], batch: int) -> float:
    gc.collect()
    started = time.perf_counter()
    n = run(records, batch)
    return n / (time.perf_counter() - started)


def measure(shape: str, records: int, repeat: int) -> tuple[float, float]:
    per_record, devices = SHAPES[shape]
    data = payloads(per_record, devices, records)
    best_base = best_ws = 0.0
    for _ in range(repeat):
        # Interleaved: a busy moment of the machine slows both, not one of them.
        best_base = max(best_base, rate(baseline, data, devices))
        best_ws = max(best_ws, rate(wattstream, data, devices))
    megabytes = sum(len(d) for _, d in data) / 1e6
    print(f"shape {shape}: {len(data)} records of {per_record} readings, {devices} devices, {megabytes:.1f} MB")
    print(f"  baseline (orjson.loads + per-device-hour sum)   {best_base:>10,.0f} readings/s")
    print(f"  wattstream (decode + validate + compute_batch)  {best_ws:>10,.0f} readings/s")
    print(f"  ratio                                           {best_ws / best_base:>10.2f}")
    return best_base, best_ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append", help="both shapes when not given")
    parser.add_argument("--records", type=int, help="records per run (default: 60,000 readings' worth)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each, the best one counts")
    args = parser.parse_args()
    for shape in args.shape or ["60x100", "6x2500"]:
        per_record, _ = SHAPES[shape]
        measure(shape, args.records or 60_000 // per_record, args.repeat)


if __name__ == "__main__":
    main()
