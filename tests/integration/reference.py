"""An independent, deliberately plain computation of what the aggregates must hold.

It shares no code with batcher/: readings of each device in seq order, every register rise
spread over the UTC hours it spans in proportion to time, samples and max power per bucket.
It assumes well-behaved meters (no resets or glitches), which is what the tests send.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def expected_aggregates(payloads: Iterable[bytes]) -> dict[tuple[str, str], dict[str, float]]:
    """(device_id, bucket) -> {"energy_wh", "samples", "power_max_w"} for the given messages."""
    readings: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for payload in payloads:
        doc = orjson.loads(payload)
        for r in doc["readings"]:
            readings[doc["device_id"]].setdefault(r["seq"], r)  # a re-sent reading counts once

    out: dict[tuple[str, str], dict[str, float]] = defaultdict(
        lambda: {"energy_wh": 0.0, "samples": 0, "power_max_w": 0.0}
    )
    for device_id, by_seq in readings.items():
        ordered = [by_seq[s] for s in sorted(by_seq)]
        for r in ordered:
            t = _ts(r["ts"])
            for key in (f"h#{t:%Y-%m-%dT%H}", f"d#{t:%Y-%m-%d}"):
                bucket = out[(device_id, key)]
                bucket["samples"] += 1
                bucket["power_max_w"] = max(bucket["power_max_w"], r.get("power_w") or 0.0)
        for a, b in zip(ordered, ordered[1:], strict=False):
            rise = b["energy_wh"] - a["energy_wh"]
            start, end = _ts(a["ts"]), _ts(b["ts"])
            span = (end - start).total_seconds()
            hour = start.replace(minute=0, second=0, microsecond=0)
            while hour < end:
                nxt = hour + timedelta(hours=1)
                covered = (min(nxt, end) - max(hour, start)).total_seconds()
                share = rise * covered / span
                out[(device_id, f"h#{hour:%Y-%m-%dT%H}")]["energy_wh"] += share
                out[(device_id, f"d#{hour:%Y-%m-%d}")]["energy_wh"] += share
                hour = nxt
    return dict(out)


def expected_local(payloads: Iterable[bytes], tz: str, minutes: int | None) -> dict[tuple[str, str], dict[str, float]]:
    """(device_id, local start) -> {"energy_wh", "samples"} per local interval of ``minutes``
    (15, 30, 60), or per local day when None; the start as RFC 3339 with the zone's offset.

    Worked out second by second on the wall clock, independently of the quarters the store keeps.
    """
    where = ZoneInfo(tz)

    def key(t: datetime) -> str:
        local = t.astimezone(where)
        if minutes is None:
            return local.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
        return local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0).isoformat()

    readings: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for payload in payloads:
        doc = orjson.loads(payload)
        for r in doc["readings"]:
            readings[doc["device_id"]].setdefault(r["seq"], r)
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: {"energy_wh": 0.0, "samples": 0})
    for device_id, by_seq in readings.items():
        ordered = [by_seq[s] for s in sorted(by_seq)]
        for r in ordered:
            out[(device_id, key(_ts(r["ts"])))]["samples"] += 1
        for a, b in zip(ordered, ordered[1:], strict=False):
            start, end = _ts(a["ts"]), _ts(b["ts"])
            seconds = int((end - start).total_seconds())
            rise = b["energy_wh"] - a["energy_wh"]
            for k in range(seconds):
                out[(device_id, key(start + timedelta(seconds=k)))]["energy_wh"] += rise / seconds
    return dict(out)


def stored_aggregates(items: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    return {
        (i["device_id"], i["bucket"]): {
            "energy_wh": float(i.get("energy_wh", 0.0)),
            "samples": int(i.get("samples", 0)),
            "power_max_w": float(i.get("power_max_w", 0.0)),
        }
        for i in items
        if i["bucket"] != "latest"
    }


def assert_same_aggregates(stored: dict, expected: dict, tolerance_wh: float = 1e-3) -> None:
    assert set(stored) == set(expected), sorted(set(stored) ^ set(expected))[:10]
    for key, want in expected.items():
        got = stored[key]
        assert got["samples"] == want["samples"], (key, got, want)
        assert abs(got["energy_wh"] - want["energy_wh"]) <= tolerance_wh, (key, got, want)
        assert got["power_max_w"] == want["power_max_w"], (key, got, want)
