"""A small corpus for the rebuild tests, and a plain computation of what it must give.

Four boxes read every 5 minutes from 21:00 to 02:00 UTC (across midnight):

- ``box-r01`` climbs steadily; one decrease of 0.3 Wh is noise under any tolerance used here;
- ``box-r02`` dips 0.7 Wh at 22:40 and stays there for one more reading before climbing on:
  noise under a 1.0 Wh tolerance, a **reset** (the low reading starts a new cycle and brings
  its own register value, 2949.3 Wh) under 0.5 Wh;
- ``box-r03`` is reset at 23:30 (5000-odd Wh down to 3 Wh), a reset under any tolerance;
- ``box-r04`` dips 0.6 Wh at 00:20 and is back above the next reading: noise under 1.0 Wh, a
  **glitch** (flagged, the same energy) under 0.5 Wh.

The reference shares no code with batcher/: per device in seq order, a rise counts and is
spread over the hours it spans in proportion to time; a decrease within the tolerance is noise
(the higher reference kept); a larger one is held until the next reading: back at or above the
reference (within the tolerance) is a glitch, continuing from the low value a reset that counts
the low value over the span before it. The corpus has no jumps and never returns to the cycle
before a reset, so those rules never apply.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.loadgen import rule_record
from readings import to_rfc3339

RECEIVED_MS = 1_795_000_000_000
START_MS = 1_794_949_200_000  # 2026-11-17T21:00:00Z
STEP_MS = 300_000
READINGS = 61
PER_MESSAGE = 5
DEVICES = ("box-r01", "box-r02", "box-r03", "box-r04")
FIRST_DAY, END_DAY = "2026-11-17", "2026-11-19"


def registers() -> dict[str, list[float]]:
    """Each device's register, reading by reading."""
    out: dict[str, list[float]] = {}
    r01 = [50_000.0 + 100.0 * i for i in range(READINGS)]
    r01[12] = r01[11] - 0.3
    out["box-r01"] = r01
    r02 = [2_000.0 + 50.0 * i for i in range(READINGS)]
    r02[20], r02[21] = r02[19] - 0.7, r02[19] - 0.65
    out["box-r02"] = r02
    out["box-r03"] = [5_000.0 + 80.0 * i if i < 30 else 3.0 + 80.0 * (i - 30) for i in range(READINGS)]
    r04 = [9_000.0 + 40.0 * i for i in range(READINGS)]
    r04[40] = r04[39] - 0.6
    out["box-r04"] = r04
    return {d: [round(v, 6) for v in values] for d, values in out.items()}


def readings() -> dict[str, list[dict[str, Any]]]:
    return {
        device: [
            {"seq": i + 1, "ts": to_rfc3339(START_MS + i * STEP_MS), "energy_wh": e, "power_w": 1000.0 + i}
            for i, e in enumerate(values)
        ]
        for device, values in registers().items()
    }


def messages() -> list[list[tuple[str, bytes]]]:
    """Three waves of messages (one per device and 5 readings), the last one sent twice."""
    chunks = {d: [rs[i : i + PER_MESSAGE] for i in range(0, READINGS, PER_MESSAGE)] for d, rs in readings().items()}
    count = len(chunks[DEVICES[0]])
    cuts = [range(0, 5), range(5, 9), range(9, count)]
    waves = [[(d, rule_record(d, chunks[d][k], RECEIVED_MS)) for k in cut for d in DEVICES] for cut in cuts]
    waves[-1].append(waves[-1][-1])  # a redelivery: its readings are duplicates
    return waves


# -- the reference -------------------------------------------------------------------------------


def _hour(ms: float) -> datetime:
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def expected(tolerance_wh: float) -> dict[tuple[str, str], dict[str, float]]:
    """(device_id, bucket) -> energy_wh, samples, resets, glitches, for every bucket with data."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(
        lambda: {"energy_wh": 0.0, "samples": 0, "resets": 0, "glitches": 0}
    )

    for device, values in registers().items():
        ts = [START_MS + i * STEP_MS for i in range(READINGS)]

        def add(field: str, ms: float, amount: float, device: str = device) -> None:
            t = _hour(ms)
            out[(device, f"h#{t:%Y-%m-%dT%H}")][field] += amount
            out[(device, f"d#{t:%Y-%m-%d}")][field] += amount

        def count(energy_wh: float, start_ms: int, end_ms: int, device: str = device) -> None:
            hour = _hour(start_ms)
            end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
            start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
            while hour < end:
                nxt = hour + timedelta(hours=1)
                share = energy_wh * (min(nxt, end) - max(hour, start)).total_seconds() / ((end_ms - start_ms) / 1000)
                out[(device, f"h#{hour:%Y-%m-%dT%H}")]["energy_wh"] += share
                out[(device, f"d#{hour:%Y-%m-%d}")]["energy_wh"] += share
                hour = nxt

        for t in ts:
            add("samples", t, 1)
        ref = 0
        suspect: int | None = None
        for i in range(1, READINGS):
            if suspect is not None:
                s, suspect = suspect, None
                if values[i] - values[ref] >= -tolerance_wh:
                    add("glitches", ts[s], 1)
                elif values[i] - values[s] >= -tolerance_wh:
                    add("resets", ts[s], 1)
                    count(values[s], ts[ref], ts[s])
                    ref = s
                else:
                    raise AssertionError("the corpus holds no reading that continues neither")
            rise = values[i] - values[ref]
            if rise < -tolerance_wh:
                suspect = i
            elif rise >= 0:
                if rise > 0:
                    count(rise, ts[ref], ts[i])
                ref = i
    return dict(out)
