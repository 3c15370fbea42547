"""Reading the aggregates back: per-device energy, and the write counts of a run."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sinks.read import fleet_buckets


def scan_aggregates(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every device's hours and days with data, closed or open (see ``sinks.read``)."""
    return fleet_buckets(dynamodb, table)


def total_by_device(items: list[dict[str, Any]], attribute: str, granularity: str = "d") -> dict[str, float]:
    """device_id -> ``attribute`` summed over its buckets of one granularity (``h`` or ``d``)."""
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        if item["bucket"].startswith(granularity + "#"):
            totals[item["device_id"]] += float(item.get(attribute, 0))
    return dict(totals)


def energy_by_device(items: list[dict[str, Any]], granularity: str = "d") -> dict[str, float]:
    return total_by_device(items, "energy_wh", granularity)


def samples_by_device(items: list[dict[str, Any]], granularity: str = "d") -> dict[str, int]:
    return {d: int(n) for d, n in total_by_device(items, "samples", granularity).items()}


def scrape(url: str) -> dict[str, float]:
    """``metric{labels}`` -> value from a Prometheus text endpoint (labels sorted)."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local endpoint
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def metric_sum(samples: dict[str, float], name: str) -> float:
    """Sum of a metric over all its label sets."""
    return sum(v for k, v in samples.items() if k.split("{", 1)[0] == name)


def write_summary(samples: dict[str, float]) -> dict[str, float]:
    """Write operations of a run, from the consumer's metrics."""
    ddb = metric_sum(samples, "wattstream_dynamodb_writes_total")
    s3 = metric_sum(samples, "wattstream_s3_puts_total")
    checkpoints = metric_sum(samples, "wattstream_checkpoints_total")
    readings = metric_sum(samples, "wattstream_readings_stored_total")
    writes = ddb + s3 + checkpoints
    return {
        "readings_stored": readings,
        "records": metric_sum(samples, "wattstream_records_total"),
        "batches": metric_sum(samples, "wattstream_batches_flushed_total"),
        "dynamodb_writes": ddb,
        "s3_puts": s3,
        "checkpoints": checkpoints,
        "write_operations": writes,
        "writes_per_1000_readings": 1000 * writes / readings if readings else 0.0,
        "reduction_vs_one_per_reading": readings / writes if writes else 0.0,
    }
