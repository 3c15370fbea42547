"""What reading a device's data back costs: bytes and read units of a year of hour items.

One device's year of readings (a reading every ``--interval-s``, a steady load with some
noise) goes through the consumer's own batch computation and settlement; the closed hour
items it produces are sized by DynamoDB's rules (``sinks.limits``). A Query bills the sizes of
the items it returns, summed per page (1 MB at most) and rounded up to 4 KB: strongly
consistent reads (what ``sinks.read`` uses) one unit per 4 KB, eventually consistent half.

    python -m bench.read_cost                     # a year, a reading every 10 s
    python -m bench.read_cost --days 30 --interval-s 60
"""

from __future__ import annotations

import argparse
import math
import random

from batcher import RegisterRules, compute_batch
from batcher.ledger import Ledger, settle
from batcher.state import DeviceState
from readings.models import Reading
from sinks.aggregates import BATCH, WRITER, bucket_item
from sinks.dynamo import encode_item
from sinks.limits import item_size_bytes

PAGE_BYTES = 1024 * 1024
READ_UNIT_BYTES = 4096
RRU_USD_PER_MILLION = 0.125


def year_of_hours(days: int, interval_s: int, seed: int = 7) -> dict[str, int]:
    """bucket -> billed bytes of each closed hour and day item of one device."""
    rng = random.Random(seed)
    start_ms = 1_767_225_600_000  # 2026-01-01T00:00Z
    step_ms = interval_s * 1000
    per_batch = max(1, 60_000 // step_ms)  # a flush a minute
    states: dict[str, DeviceState] = {}
    ledgers: dict[str, Ledger] = {}
    sizes: dict[str, int] = {}
    register = 1_000_000.0
    batch: list[Reading] = []
    count = days * 86_400 // interval_s + 1
    for seq in range(count):
        power = 2_000 + 1_500 * math.sin(seq / 500) + rng.uniform(-200, 200)
        register += power * interval_s / 3600
        batch.append(Reading("box-000123", seq + 1, start_ms + seq * step_ms, round(register, 1), round(power, 1)))
        if len(batch) < per_batch and seq < count - 1:
            continue
        result = compute_batch(batch, states, RegisterRules())
        settled = settle(result, ledgers)
        states, ledgers = result.states, settled.ledgers
        for (device_id, bucket), agg in settled.closed.items():
            item = {**bucket_item(device_id, bucket, agg), WRITER: "shardId-000000000001", BATCH: "9" * 60}
            sizes[bucket] = item_size_bytes(encode_item(item))
        batch = []
    return sizes


def query_units(sizes: list[int], *, consistent: bool = True) -> tuple[float, int]:
    """Read units and pages of a Query returning items of these sizes."""
    units, pages, page = 0.0, 0, 0
    for size in [*sizes, None]:
        if size is None or page + size > PAGE_BYTES:
            if page:
                units += math.ceil(page / READ_UNIT_BYTES) * (1 if consistent else 0.5)
                pages += 1
            page = 0
        if size is not None:
            page += size
    return units, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--interval-s", type=int, default=10)
    args = parser.parse_args()
    sizes = year_of_hours(args.days, args.interval_s)
    hours = [size for bucket, size in sorted(sizes.items()) if bucket.startswith("h#")]
    days = [size for bucket, size in sorted(sizes.items()) if bucket.startswith("d#")]
    consistent, pages = query_units(hours)
    eventual, _ = query_units(hours, consistent=False)
    print(f"device-days {args.days}, a reading every {args.interval_s} s")
    print(
        f"hour items          {len(hours):>8}   mean {sum(hours) / len(hours):.0f} B   total {sum(hours) / 1e6:.2f} MB"
    )
    print(f"day items           {len(days):>8}   mean {sum(days) / max(1, len(days)):.0f} B")
    print(f"Query of every hour (any --every from 15m to 1mo): {pages} pages")
    print(f"  strongly consistent {consistent:>8.0f} RRU   ${consistent / 1e6 * RRU_USD_PER_MILLION:.6f}")
    print(f"  eventually consistent {eventual:>6.0f} RRU   ${eventual / 1e6 * RRU_USD_PER_MILLION:.6f}")
    day_units, _ = query_units(days)
    print(f"Query of the day items alone: {day_units:.0f} RRU")


if __name__ == "__main__":
    main()
