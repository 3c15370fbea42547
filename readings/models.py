"""Wire contract v1: what a box publishes and what the topic rule puts on the stream.

A box publishes one ``Message`` per MQTT message on ``energy/consumption/<device_id>``.
The IoT Core topic rule (and the local ``bridge``) adds ``thing`` (the device id taken from
the topic) and ``received_ms`` and puts the result on Kinesis with partition key = thing.

Inside the code every instant is UTC epoch milliseconds (``ts_ms``); RFC 3339 lives only on
the wire.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, NamedTuple

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1
TOPIC_PREFIX = "energy/consumption/"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

THING_NAME_PATTERN = r"^[A-Za-z0-9:_-]{1,128}$"
"""What AWS IoT Core accepts as a thing name; a device id is a thing name."""
DeviceId = Annotated[str, Field(min_length=1, max_length=128, pattern=THING_NAME_PATTERN)]

MAX_SEQ = 2**63 - 1
"""A box's counter fits a signed 64-bit integer; larger numbers are not counters."""
MAX_TS_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write."""
MAX_READINGS = 1000
"""Readings per message; the box sends a few dozen (it keeps a message under 5 KB)."""


def _json_number(value: object) -> object:
    # A JSON string or boolean is not a number, even where Python could convert it.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a JSON number")
    return value


def _micro(value: float) -> float:
    # Micro-units are far below any meter's resolution, and rounding keeps every stored sum
    # inside DynamoDB's number range (a value like 1e-200 would not fit).
    return round(value, 6)


Finite = Annotated[float, BeforeValidator(_json_number), Field(allow_inf_nan=False), AfterValidator(_micro)]

# Upper bounds no real meter reaches; they keep every value and sum storable.
MAX_REGISTER_WH = 1e13
MAX_POWER_W = 1e9
MAX_ELECTRICAL = 1e6


class WireReading(BaseModel):
    """One meter reading as published: ``ts`` is RFC 3339 with an offset or ``Z``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    seq: Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]
    ts: AwareDatetime
    energy_wh: Annotated[Finite, Field(ge=0, le=MAX_REGISTER_WH)]
    power_w: Annotated[Finite, Field(ge=0, le=MAX_POWER_W)] | None = None
    voltage_v: Annotated[Finite, Field(ge=0, le=MAX_ELECTRICAL)] | None = None
    current_a: Annotated[Finite, Field(ge=0, le=MAX_ELECTRICAL)] | None = None
    pf: Annotated[Finite, Field(ge=-1, le=1)] | None = None
    energy_export_wh: Annotated[Finite, Field(ge=0, le=MAX_REGISTER_WH)] | None = None
    """The export register (OBIS 2.8.0) of a meter that measures both directions; optional,
    so a box that has none, or predates it, sends none."""


class Message(BaseModel):
    """One MQTT message of one device: 1..N readings."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1  # SCHEMA_VERSION
    device_id: DeviceId
    readings: list[WireReading] = Field(min_length=1)


class RuleRecord(Message):
    """A message as the topic rule delivers it into Kinesis."""

    thing: DeviceId
    received_ms: Annotated[int, Field(ge=0, le=MAX_TS_MS)]


class Reading(NamedTuple):
    """A validated reading inside the pipeline (times in UTC epoch milliseconds).

    A named tuple, not a dataclass: the decoder builds one per reading on the hot path, and a
    tuple is built in a quarter of a frozen dataclass's time. Immutable all the same.
    """

    device_id: str
    seq: int
    ts_ms: int
    energy_wh: float
    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    pf: float | None = None
    energy_export_wh: float | None = None


def to_ts_ms(ts: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are read as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    # Integer arithmetic: ts.timestamp() * 1000 loses a millisecond to float rounding.
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def to_rfc3339(ts_ms: int) -> str:
    """``2026-11-27T13:00:00.123Z`` for epoch milliseconds."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def is_thing_name(value: object) -> bool:
    """True for a string IoT Core would accept as a thing name (and so as a device id)."""
    return isinstance(value, str) and _THING_NAME.fullmatch(value) is not None


_THING_NAME = re.compile(THING_NAME_PATTERN[1:-1])


def topic_for(device_id: str) -> str:
    return f"{TOPIC_PREFIX}{device_id}"


def thing_from_topic(topic: str) -> str | None:
    """The device id of ``energy/consumption/<thing>``, as the rule's ``topic(3)``."""
    parts = topic.split("/")
    if len(parts) != 3 or f"{parts[0]}/{parts[1]}/" != TOPIC_PREFIX or not parts[2]:
        return None
    return parts[2]
