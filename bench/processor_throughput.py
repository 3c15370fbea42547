"""CPU cost of one shard's record processor: decode + validate + batch computation.

The store is left out on purpose (moto would be the bottleneck, not the processor): this is
the ceiling one Python process per shard can sustain. Run:

    .venv/bin/python -m bench.processor_throughput [--devices 100] [--records 20000] [--per-message 10]
"""

from __future__ import annotations

import argparse
import time

import orjson

from batcher import compute_batch
from consumer.settings import Settings
from devstack.loadgen import Fleet
from readings import decode_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=10)
    parser.add_argument("--batch-records", type=int, default=10_000)
    args = parser.parse_args()

    fleet = Fleet(args.devices, interval_ms=10_000)
    now_ms = 1_795_000_000_000
    payloads: list[bytes] = []
    k = 0
    while len(payloads) < args.records:
        k += 1
        payloads.extend(d for _, d in fleet.messages(now_ms - 10**9 + k * 100_000, args.per_message, now_ms))
    payloads = payloads[: args.records]
    megabytes = sum(map(len, payloads)) / 1e6

    rules = Settings().register_rules
    started = time.perf_counter()
    readings = []
    for data in payloads:
        readings.extend(decode_record(data, fallback_received_ms=now_ms).readings)
    decoded_s = time.perf_counter() - started

    started = time.perf_counter()
    states: dict = {}
    per_batch = args.batch_records * args.per_message
    for start in range(0, len(readings), per_batch):
        result = compute_batch(readings[start : start + per_batch], states, rules)
        states = result.states
    computed_s = time.perf_counter() - started

    n = len(readings)
    total_s = decoded_s + computed_s
    print(f"records {len(payloads)}  readings {n}  payload {megabytes:.1f} MB  devices {args.devices}")
    print(f"decode+validate   {n / decoded_s:>10,.0f} readings/s  ({len(payloads) / decoded_s:,.0f} records/s)")
    print(f"batch compute     {n / computed_s:>10,.0f} readings/s")
    print(f"processor total   {n / total_s:>10,.0f} readings/s  ({megabytes / total_s:.1f} MB/s)")
    sizes = [len(orjson.dumps(state.to_dict())) for state in states.values()]
    print(f"device state      {sum(sizes) / len(sizes):>10,.0f} bytes of snapshot JSON per device")


if __name__ == "__main__":
    main()
