"""The processor's hot path against the least any correct processor must do, on the same payloads.

The *baseline* parses each record with ``orjson.loads`` and adds each reading's register to a
per-device-hour sum: no validation, no state, no rules. *wattstream* runs what a shard's
processor runs per record: ``decode_record`` (size limits, envelope, every reading validated)
and ``compute_batch`` over batches of one record per device (a flush of a fleet that sends one
message per device per flush), state carried from batch to batch. Both run in this process on
the same payloads, interleaved, best of ``--repeat`` each, so the machine's noise cancels in the
ratio. The store is left out (``bench.fleet_cost`` measures it). All of them run with the record
processor's garbage-collector thresholds (``consumer.tuning``), as a shard's processor does.

Shapes: ``60x100`` is 60 readings per record (~6 KB) from 100 devices; ``6x2500`` is W1's
shard, 6 readings per record from 2,500 devices. Run:

    .venv/bin/python -m bench.hot_path [--shape 60x100|6x2500] [--records N] [--repeat 5] [--default-gc]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import datetime

import orjson

from batcher import DeviceState, batch, compute_batch
from consumer.settings import Settings
from consumer.tuning import tune_gc
from devstack.loadgen import Fleet
from readings import Reading, decode, decode_record

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


def sliced(records: list[tuple[str, bytes]], states: dict[str, DeviceState]) -> int:
    """Parse, then sum each reading's register per device and ``ts[:13]``: not a correct
    processor (an offset moves the hour, a register is cumulative), the floor of any."""
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


def baseline(records: list[tuple[str, bytes]], states: dict[str, DeviceState]) -> int:
    """The least a correct processor does: parse, read ``ts`` as RFC 3339 (offsets included), and
    sum each register delta per device and UTC hour. No validation, no rules."""
    sums: dict[tuple[str, int], float] = {}
    previous_wh: dict[str, float] = {}
    n = 0
    for _, data in records:
        doc = orjson.loads(data)
        device_id = doc["device_id"]
        last_wh = previous_wh.get(device_id)
        for r in doc["readings"]:
            ts_ms = int(datetime.fromisoformat(r["ts"]).timestamp() * 1000)
            energy_wh = r["energy_wh"]
            if last_wh is not None:
                key = (device_id, ts_ms - ts_ms % 3_600_000)
                sums[key] = sums.get(key, 0.0) + energy_wh - last_wh
            last_wh = energy_wh
            n += 1
        previous_wh[device_id] = last_wh
    return n


def wattstream(records: list[tuple[str, bytes]], states: dict[str, DeviceState]) -> int:
    """Decode and validate every record, then compute its batch, as a shard's processor does."""
    rules = Settings().register_rules
    batch_records = len(states)
    n = 0
    for start in range(0, len(records), batch_records):
        batch: list[Reading] = []
        for key, data in records[start : start + batch_records]:
            batch.extend(decode_record(data, fallback_received_ms=NOW_MS, partition_key=key).readings)
        n += len(batch)
        states = compute_batch(batch, states, rules).states
    return n


Run = Callable[[list[tuple[str, bytes]], dict[str, DeviceState]], int]


def rate(run: Run, records: list[tuple[str, bytes]], states: dict[str, DeviceState]) -> float:
    gc.collect()
    started = time.perf_counter()
    n = run(records, states)
    return n / (time.perf_counter() - started)


def measure(shape: str, records: int, repeat: int) -> dict[str, float]:
    per_record, devices = SHAPES[shape]
    data = payloads(per_record, devices, devices + records)
    # A processor that has run a while holds every device's state: the first round of records
    # builds it, untimed; the rounds after it are measured.
    warm_up, data = data[:devices], data[devices:]
    states = compute_batch(
        [r for key, d in warm_up for r in decode_record(d, fallback_received_ms=NOW_MS, partition_key=key).readings],
        {},
        Settings().register_rules,
    ).states
    best = dict.fromkeys(("sliced", "baseline", "wattstream"), 0.0)
    for _ in range(repeat):
        # Interleaved: a busy moment of the machine slows all of them, not one.
        for name, run in (("sliced", sliced), ("baseline", baseline), ("wattstream", wattstream)):
            best[name] = max(best[name], rate(run, data, states))
    megabytes = sum(len(d) for _, d in data) / 1e6
    print(f"shape {shape}: {len(data)} records of {per_record} readings, {devices} devices, {megabytes:.1f} MB")
    print(f"  orjson.loads + sum per device and ts[:13]                  {best['sliced']:>10,.0f} readings/s")
    print(f"  baseline: orjson.loads + RFC 3339 + register deltas per hour  {best['baseline']:>10,.0f} readings/s")
    print(f"  wattstream: decode + validate + compute_batch                {best['wattstream']:>10,.0f} readings/s")
    print(
        f"  ratio to the baseline {best['wattstream'] / best['baseline']:.2f}, to ts[:13] {best['wattstream'] / best['sliced']:.2f}"
    )
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append", help="both shapes when not given")
    parser.add_argument("--records", type=int, help="records per run (default: 60,000 readings' worth)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each, the best one counts")
    parser.add_argument("--default-gc", action="store_true", help="CPython's own gc thresholds, not the processor's")
    args = parser.parse_args()
    if not args.default_gc:
        tune_gc()
    print(f"compiled hot path: decoder {decode.COMPILED}, batcher {batch.COMPILED}; gc thresholds {gc.get_threshold()}")
    for shape in args.shape or ["60x100", "6x2500"]:
        per_record, _ = SHAPES[shape]
        measure(shape, args.records or 60_000 // per_record, args.repeat)


if __name__ == "__main__":
    main()
