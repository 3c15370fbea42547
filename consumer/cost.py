"""The monthly AWS bill of a fleet, line by line, for three designs of the storage path.

Designs (``DESIGNS``):

- ``wattstream``: the KCL consumer on ECS Fargate (ARM) batching in process, as built here.
- ``lambda``: the reference architecture's two Lambdas on the stream (event source mapping,
  batch size ``LAMBDA_BATCH_RECORDS``): one writes one UpdateItem per device per batch to
  DynamoDB, the other writes the raw batch to S3.
- ``per-reading``: the same Fargate consumer writing one DynamoDB item per reading.

What is computed from the fleet's shape and what comes from measurement:

- IoT Core, Kinesis, the Fargate task count and the Lambda request count follow from the shape
  (boxes, reading interval, readings per message, message bytes) and the constants below.
- DynamoDB units, S3 requests, CPU time, Lambda GB-seconds and stored bytes per reading or
  device come from a units file (``resources/units.json`` by default), measured per 1,000
  readings at the shape it names. They are not rescaled to another flush interval or fleet
  size: a bill for another shape says so in its notes.

Every price comes from one table (``resources/prices.json``, overridable key by key). A month
is 730 hours (AWS's convention), a GB is 2**30 bytes, and the bill is the steady state: storage
holds ``months_kept`` months of history. No free tier, no Savings Plans, no data transfer out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from readings.errors import ConfigError

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GB = 2**30

IOT_STEP_BYTES = 5 * 1024
"""IoT Core meters messages, rules and actions in 5 KB steps."""
IOT_MAX_MESSAGE_BYTES = 128 * 1024
TOPIC_BYTES = len("energy/consumption/box-0001")
"""IoT Core meters a PUBLISH on its payload plus its topic (a thing name of 8 characters)."""
RULE_ADDED_BYTES = 56
"""What a Kinesis record carries beyond the message: the rule's ``thing`` and ``received_ms``
fields (47 B for an 8-character thing name) and the partition key (8 B), rounded up."""
RULE_ACTIONS = 1
"""The topic rule has one action (Kinesis); its error action runs only on failures."""

KINESIS_SHARD_RECORDS_PER_S = 1000
KINESIS_SHARD_BYTES_PER_S = 1024 * 1024
KINESIS_PUT_UNIT_BYTES = 25 * 1024
KINESIS_ON_DEMAND_KB = 1024
"""On-demand bills each record rounded up to the next KB."""
KINESIS_ON_DEMAND_MIN_SHARDS = 4
"""An on-demand stream starts with the capacity of 4 shards (4 MB/s in)."""

SHARDS_PER_TASK = 4
"""One consumer task per 4 shards (each shard is one Python processor in the task)."""
FARGATE_SIZES: tuple[tuple[float, float], ...] = (
    (0.25, 0.5),
    (0.5, 1.0),
    (1.0, 2.0),
    (2.0, 4.0),
    (4.0, 8.0),
    (8.0, 16.0),
    (16.0, 32.0),
)
"""(vCPU, least memory in GB that Fargate pairs with it); a task takes the least memory."""

LAMBDA_BATCH_RECORDS = 100
LAMBDA_FUNCTIONS = 2
"""The DynamoDB writer and the S3 writer, each its own stream consumer."""
LAMBDA_MEMORY_MB = 128
"""Only documents what the measured ``lambda_gb_s_per_1000_readings`` assumes."""

CUSTOM_METRICS = {"wattstream": 30, "per-reading": 30, "lambda": 10}
"""CloudWatch custom metrics: the consumer's wattstream_* counters and histograms with the
``job`` dimension, plus rejected-by-reason and flushes-by-trigger (deploy/ecs/adot-config);
the Lambda design publishes a smaller set of business counters (its service metrics are free)."""
LOG_BYTES_PER_SHARD_FLUSH = 600
"""``batch_flushed`` and ``checkpointed``, one JSON line each, per shard and flush."""
EMF_BYTES_PER_TASK_MINUTE = 4500
"""The ADOT sidecar's EMF log events: ~30 metrics x ~150 B, every 60 s scrape, per task."""
LAMBDA_LOG_BYTES_PER_INVOCATION = 550
"""START, END and REPORT platform lines plus one line of the function, per invocation."""

DESIGNS = ("wattstream", "lambda", "per-reading")
Design = Literal["wattstream", "lambda", "per-reading"]
KinesisMode = Literal["provisioned", "on-demand"]
UNIT_KEYS = (
    "dynamodb_wru_per_1000_readings",
    "dynamodb_rru_per_1000_readings",
    "s3_puts_per_1000_readings",
    "cpu_ms_per_1000_readings",
    "dynamodb_bytes_per_device",
    "s3_bytes_per_reading",
)
OPTIONAL_UNIT_KEYS = ("s3_gets_per_1000_readings",)


def default_message_bytes(readings_per_message: int) -> int:
    """The wire-format v1 message of N typical readings: envelope ~60 B, ~75 B per reading."""
    return 60 + 75 * readings_per_message


@dataclass(frozen=True, slots=True)
class FleetShape:
    boxes: int = 10_000
    reading_interval_s: float = 10.0
    readings_per_message: int = 6
    flush_interval_s: float = 60.0
    months_kept: float = 12.0
    message_bytes: int | None = None
    """Payload bytes of one message; default ``default_message_bytes(readings_per_message)``."""
    ingest: Literal["basic", "topic"] = "basic"
    shards: int | None = None
    """Shards of the stream; default: what the throughput needs (``throughput_shards``)."""

    def __post_init__(self) -> None:
        if self.boxes < 1 or self.readings_per_message < 1:
            raise ConfigError("boxes and readings per message must be at least 1")
        if self.reading_interval_s <= 0 or self.flush_interval_s <= 0 or self.months_kept < 0:
            raise ConfigError("intervals must be > 0 and months kept >= 0")
        if self.shards is not None and self.shards < 1:
            raise ConfigError("shards must be at least 1")
        if not 1 <= self.payload_bytes <= IOT_MAX_MESSAGE_BYTES:
            raise ConfigError(f"a message must be 1 to {IOT_MAX_MESSAGE_BYTES} bytes, not {self.payload_bytes}")

    @property
    def payload_bytes(self) -> int:
        return (
            self.message_bytes if self.message_bytes is not None else default_message_bytes(self.readings_per_message)
        )

    @property
    def readings_per_s(self) -> float:
        return self.boxes / self.reading_interval_s

    @property
    def messages_per_s(self) -> float:
        """Also Kinesis records per second: the rule puts one record per message."""
        return self.readings_per_s / self.readings_per_message

    @property
    def record_bytes(self) -> int:
        return self.payload_bytes + RULE_ADDED_BYTES

    @property
    def iot_steps_per_message(self) -> int:
        return math.ceil((self.payload_bytes + TOPIC_BYTES) / IOT_STEP_BYTES)


def throughput_shards(shape: FleetShape) -> int:
    """The fewest provisioned shards that take the stream's records/s and bytes/s, at 100 %.

    No headroom: pass ``shards`` for it (a shard at its limit throttles the rule's puts).
    """
    by_records = math.ceil(shape.messages_per_s / KINESIS_SHARD_RECORDS_PER_S)
    by_bytes = math.ceil(shape.messages_per_s * shape.record_bytes / KINESIS_SHARD_BYTES_PER_S)
    return max(1, by_records, by_bytes)


@dataclass(frozen=True, slots=True)
class Prices:
    """The price table: key -> entry with ``usd`` (or ``tiers``), ``unit``, ``source``, ``read``."""

    entries: Mapping[str, Mapping[str, Any]]

    def usd(self, key: str) -> float:
        try:
            return float(self.entries[key]["usd"])
        except KeyError as exc:
            raise ConfigError(f"price {key!r} is missing or has no 'usd'") from exc

    def tiered_usd(self, key: str, millions: float) -> float:
        """The cost of ``millions`` units a month on a tiered price (or a flat ``usd``)."""
        entry = self.entries.get(key)
        if entry is None:
            raise ConfigError(f"price {key!r} is missing")
        if "tiers" not in entry:
            return millions * self.usd(key)
        total, floor = 0.0, 0.0
        for upto, usd in entry["tiers"]:
            ceiling = math.inf if upto is None else float(upto)
            total += max(0.0, min(millions, ceiling) - floor) * float(usd)
            floor = ceiling
            if millions <= floor:
                break
        return total


def load_prices(path: Path | None = None) -> Prices:
    """The shipped table, with each key of the JSON file ``path`` replacing the shipped entry.

    The file holds ``{"prices": {key: entry}}`` or just ``{key: entry}``; an entry may be a
    bare number (usd). An unknown key is refused, so a typo cannot leave a price unchanged.
    """
    shipped = json.loads(resources.files("consumer.resources").joinpath("prices.json").read_text())["prices"]
    if path is None:
        return Prices(shipped)
    given = _read_json(path)
    given = given.get("prices", given)
    merged = dict(shipped)
    for key, value in given.items():
        if key not in shipped:
            raise ConfigError(f"{path}: unknown price {key!r} (known: {', '.join(sorted(shipped))})")
        if isinstance(value, int | float):
            value = {**shipped[key], "usd": value, "source": f"{path}", "checked": "given in --prices"}
            value.pop("tiers", None)
        elif not isinstance(value, dict) or not ({"usd", "tiers"} & value.keys()):
            raise ConfigError(f"{path}: price {key!r} must be a number or an object with 'usd' or 'tiers'")
        merged[key] = value
    return Prices(merged)


def load_units(path: Path | None = None) -> dict[str, Any]:
    """The measured units file (the shipped placeholders by default), each design checked."""
    if path is None:
        units = json.loads(resources.files("consumer.resources").joinpath("units.json").read_text())
    else:
        units = _read_json(path)
    designs = units.get("designs")
    if not isinstance(designs, dict):
        raise ConfigError("units file has no 'designs' object")
    for design in DESIGNS:
        figures = designs.get(design)
        if not isinstance(figures, dict):
            raise ConfigError(f"units file has no design {design!r}")
        needed = UNIT_KEYS + (("lambda_gb_s_per_1000_readings",) if design == "lambda" else ())
        missing = [k for k in needed if not isinstance(figures.get(k), int | float)]
        if missing:
            raise ConfigError(f"units of {design!r} lack numbers for {', '.join(missing)}")
    return units


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


@dataclass(frozen=True, slots=True)
class Line:
    key: str
    label: str
    units: float
    """Billed units a month, in ``unit``."""
    unit: str
    usd: float
    """Dollars a month."""


@dataclass(frozen=True, slots=True)
class Bill:
    """One design's month. ``total_usd`` is by construction the sum of the lines."""

    design: str
    kinesis_mode: KinesisMode
    shards: int
    readings_per_month: float
    lines: tuple[Line, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def total_usd(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def usd_per_million_readings(self) -> float:
        return self.total_usd / (self.readings_per_month / 1e6)

    def line(self, key: str) -> Line:
        return next(line for line in self.lines if line.key == key)


def stream_shards(shape: FleetShape, mode: KinesisMode) -> int:
    if shape.shards is not None:
        return shape.shards
    needed = throughput_shards(shape)
    return max(KINESIS_ON_DEMAND_MIN_SHARDS, needed) if mode == "on-demand" else needed


def fargate_tasks(vcpu_needed: float, shards: int) -> tuple[int, float, float]:
    """(tasks, vCPU per task, GB per task): one task per ``SHARDS_PER_TASK`` shards, each the
    smallest Fargate size that carries its share of ``vcpu_needed`` (at least 0.25 vCPU/0.5 GB);
    more tasks when one would need more than the largest size."""
    largest_vcpu = FARGATE_SIZES[-1][0]
    tasks = max(1, math.ceil(shards / SHARDS_PER_TASK), math.ceil(vcpu_needed / largest_vcpu))
    share = vcpu_needed / tasks
    vcpu, memory_gb = next(size for size in FARGATE_SIZES if size[0] >= share)
    return tasks, vcpu, memory_gb


def lambda_invocations_per_s(shape: FleetShape, shards: int) -> float:
    """Invocations a second of one function: the event source mapping polls each shard about
    once a second (no batching window) and hands at most ``LAMBDA_BATCH_RECORDS`` per call."""
    per_shard = shape.messages_per_s / shards
    return min(shape.messages_per_s, shards * math.ceil(per_shard / LAMBDA_BATCH_RECORDS))


def bill(
    shape: FleetShape, design: Design, units: Mapping[str, Any], prices: Prices, kinesis_mode: KinesisMode
) -> Bill:
    """The month of ``design`` for ``shape`` with the stream in ``kinesis_mode``."""
    if design not in DESIGNS:
        raise ConfigError(f"unknown design {design!r}")
    u = {k: 0.0 for k in OPTIONAL_UNIT_KEYS} | dict(units["designs"][design])
    shards = stream_shards(shape, kinesis_mode)
    readings = shape.readings_per_s * SECONDS_PER_MONTH
    messages = shape.messages_per_s * SECONDS_PER_MONTH
    steps = messages * shape.iot_steps_per_message
    lines: list[Line] = []

    def add(key: str, label: str, amount: float, unit: str, usd: float) -> None:
        lines.append(Line(key, label, amount, unit, usd))

    minutes = shape.boxes * HOURS_PER_MONTH * 60
    add(
        "iot_connectivity",
        "IoT Core connectivity",
        minutes,
        "conn-min",
        minutes / 1e6 * prices.usd("iot_connectivity_per_million_minutes"),
    )
    if shape.ingest == "basic":
        add("iot_messaging", "IoT Core messaging (Basic Ingest: none)", 0.0, "5KB msgs", 0.0)
    else:
        add(
            "iot_messaging",
            "IoT Core messaging",
            steps,
            "5KB msgs",
            prices.tiered_usd("iot_messaging_per_million", steps / 1e6),
        )
    add(
        "iot_rules",
        "IoT rules triggered",
        steps,
        "5KB rules",
        steps / 1e6 * prices.usd("iot_rules_triggered_per_million"),
    )
    actions = steps * RULE_ACTIONS
    add(
        "iot_actions",
        "IoT rule actions (Kinesis)",
        actions,
        "5KB actions",
        actions / 1e6 * prices.usd("iot_actions_per_million"),
    )

    consumers = LAMBDA_FUNCTIONS if design == "lambda" else 1
    if kinesis_mode == "provisioned":
        shard_hours = shards * HOURS_PER_MONTH
        add(
            "kinesis_shards",
            f"Kinesis shard-hours ({shards} shard{'s' * (shards > 1)})",
            shard_hours,
            "shard-h",
            shard_hours * prices.usd("kinesis_shard_hour"),
        )
        put_units = messages * math.ceil(shape.record_bytes / KINESIS_PUT_UNIT_BYTES)
        add(
            "kinesis_put_units",
            "Kinesis PUT payload units",
            put_units,
            "25KB units",
            put_units / 1e6 * prices.usd("kinesis_put_payload_units_per_million"),
        )
    else:
        add(
            "kinesis_stream_hours",
            "Kinesis on-demand stream-hours",
            HOURS_PER_MONTH,
            "stream-h",
            HOURS_PER_MONTH * prices.usd("kinesis_on_demand_stream_hour"),
        )
        ingest_gb = messages * math.ceil(shape.record_bytes / KINESIS_ON_DEMAND_KB) * KINESIS_ON_DEMAND_KB / GB
        add(
            "kinesis_ingest",
            "Kinesis on-demand data in",
            ingest_gb,
            "GB",
            ingest_gb * prices.usd("kinesis_on_demand_ingest_per_gb"),
        )
        add(
            "kinesis_retrieval",
            f"Kinesis on-demand data out ({consumers} consumer{'s' * (consumers > 1)})",
            ingest_gb * consumers,
            "GB",
            ingest_gb * consumers * prices.usd("kinesis_on_demand_retrieval_per_gb"),
        )

    if design == "lambda":
        requests = LAMBDA_FUNCTIONS * lambda_invocations_per_s(shape, shards) * SECONDS_PER_MONTH
        add(
            "lambda_requests",
            f"Lambda requests ({LAMBDA_FUNCTIONS} functions)",
            requests,
            "requests",
            requests / 1e6 * prices.usd("lambda_requests_per_million"),
        )
        gb_s = readings / 1000 * u["lambda_gb_s_per_1000_readings"]
        add(
            "lambda_duration",
            f"Lambda duration ({LAMBDA_MEMORY_MB} MB)",
            gb_s,
            "GB-s",
            gb_s * prices.usd("lambda_gb_second"),
        )
        log_bytes = requests * LAMBDA_LOG_BYTES_PER_INVOCATION
        tasks = 0
    else:
        vcpu_needed = u["cpu_ms_per_1000_readings"] * shape.readings_per_s / 1e6
        tasks, task_vcpu, task_gb = fargate_tasks(vcpu_needed, shards)
        vcpu_hours = tasks * task_vcpu * HOURS_PER_MONTH
        add(
            "fargate_vcpu",
            f"Fargate ARM vCPU ({tasks} x {task_vcpu:g} vCPU)",
            vcpu_hours,
            "vCPU-h",
            vcpu_hours * prices.usd("fargate_arm_vcpu_hour"),
        )
        gb_hours = tasks * task_gb * HOURS_PER_MONTH
        add(
            "fargate_memory",
            f"Fargate ARM memory ({tasks} x {task_gb:g} GB)",
            gb_hours,
            "GB-h",
            gb_hours * prices.usd("fargate_arm_gb_hour"),
        )
        flushes = shards * SECONDS_PER_MONTH / shape.flush_interval_s
        log_bytes = flushes * LOG_BYTES_PER_SHARD_FLUSH + tasks * HOURS_PER_MONTH * 60 * EMF_BYTES_PER_TASK_MINUTE

    wru = readings / 1000 * u["dynamodb_wru_per_1000_readings"]
    add("dynamodb_writes", "DynamoDB writes", wru, "WRU", wru / 1e6 * prices.usd("dynamodb_wru_per_million"))
    rru = readings / 1000 * u["dynamodb_rru_per_1000_readings"]
    add("dynamodb_reads", "DynamoDB reads", rru, "RRU", rru / 1e6 * prices.usd("dynamodb_rru_per_million"))
    ddb_gb = shape.boxes * u["dynamodb_bytes_per_device"] * shape.months_kept / GB
    add(
        "dynamodb_storage",
        f"DynamoDB storage ({shape.months_kept:g} months)",
        ddb_gb,
        "GB-month",
        ddb_gb * prices.usd("dynamodb_storage_gb_month"),
    )
    puts = readings / 1000 * u["s3_puts_per_1000_readings"]
    add("s3_puts", "S3 PUT requests", puts, "requests", puts / 1000 * prices.usd("s3_put_per_1000"))
    gets = readings / 1000 * u["s3_gets_per_1000_readings"]
    add("s3_gets", "S3 GET requests", gets, "requests", gets / 1000 * prices.usd("s3_get_per_1000"))
    s3_gb = readings * u["s3_bytes_per_reading"] * shape.months_kept / GB
    add(
        "s3_storage",
        f"S3 Standard storage ({shape.months_kept:g} months)",
        s3_gb,
        "GB-month",
        s3_gb * prices.usd("s3_standard_gb_month"),
    )
    metrics = CUSTOM_METRICS[design]
    add(
        "cloudwatch_metrics",
        "CloudWatch custom metrics",
        metrics,
        "metric-month",
        metrics * prices.usd("cloudwatch_metric_month"),
    )
    add(
        "cloudwatch_logs",
        "CloudWatch logs ingested",
        log_bytes / GB,
        "GB",
        log_bytes / GB * prices.usd("cloudwatch_logs_ingest_per_gb"),
    )

    return Bill(design, kinesis_mode, shards, readings, tuple(lines), _notes(shape, units, shards, tasks))


def _notes(shape: FleetShape, units: Mapping[str, Any], shards: int, tasks: int) -> tuple[str, ...]:
    notes = []
    if not units.get("measured", False):
        notes.append(
            f"units are placeholders (measured: false); measure them with `{units.get('command', 'python -m bench.fleet_cost')}`"
        )
    measured = units.get("shape") or {}
    differs = [
        k
        for k in ("boxes", "reading_interval_s", "readings_per_message", "flush_interval_s")
        if k in measured and float(measured[k]) != float(getattr(shape, k))
    ]
    if differs:
        notes.append(
            f"units were measured at another shape ({', '.join(f'{k}={measured[k]}' for k in differs)}); "
            "per-reading units are applied unscaled"
        )
    if shape.shards is not None and shape.shards < throughput_shards(shape):
        notes.append(
            f"{shape.shards} shards are fewer than the {throughput_shards(shape)} the throughput needs: puts would be throttled"
        )
    return tuple(notes)


@dataclass(frozen=True, slots=True)
class Estimate:
    shape: FleetShape
    bills: tuple[Bill, ...]
    kinesis_chosen: bool
    """True when the Kinesis mode of each bill was picked as the cheaper of the two."""


def estimate(
    shape: FleetShape,
    designs: tuple[str, ...],
    units: Mapping[str, Any],
    prices: Prices,
    kinesis_mode: KinesisMode | None = None,
) -> Estimate:
    """A bill per design; with no ``kinesis_mode``, each design's cheaper whole bill of the two."""
    bills = []
    for design in designs:
        if kinesis_mode is not None:
            bills.append(bill(shape, design, units, prices, kinesis_mode))  # type: ignore[arg-type]
            continue
        both = [bill(shape, design, units, prices, mode) for mode in ("provisioned", "on-demand")]  # type: ignore[arg-type]
        bills.append(min(both, key=lambda b: b.total_usd))
    return Estimate(shape, tuple(bills), kinesis_chosen=kinesis_mode is None)


def to_json(result: Estimate) -> dict[str, Any]:
    shape = result.shape
    return {
        "shape": {
            "boxes": shape.boxes,
            "reading_interval_s": shape.reading_interval_s,
            "readings_per_message": shape.readings_per_message,
            "flush_interval_s": shape.flush_interval_s,
            "months_kept": shape.months_kept,
            "message_bytes": shape.payload_bytes,
            "ingest": shape.ingest,
            "readings_per_s": shape.readings_per_s,
            "messages_per_s": shape.messages_per_s,
        },
        "kinesis_chosen_as_cheaper": result.kinesis_chosen,
        "designs": {
            b.design: {
                "kinesis_mode": b.kinesis_mode,
                "shards": b.shards,
                "readings_per_month": b.readings_per_month,
                "lines": [
                    {
                        "key": ln.key,
                        "label": ln.label,
                        "units_per_month": ln.units,
                        "unit": ln.unit,
                        "usd_per_month": ln.usd,
                    }
                    for ln in b.lines
                ],
                "total_usd_per_month": b.total_usd,
                "usd_per_million_readings": b.usd_per_million_readings,
                "notes": list(b.notes),
            }
            for b in result.bills
        },
    }
