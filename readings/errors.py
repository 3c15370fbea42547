"""Reason codes for rejected input, and the package's exception root.

Rejected input is data, not an exception: a record or a reading that cannot be stored gets
one of the reason codes below, is counted under it, logged, and written to the dead-letter
sink. Exceptions are for failures of the pipeline itself:

    WattstreamError
     +-- ConfigError                 settings that cannot work
     +-- SinkError                   a store refused or kept failing (sinks/)
     |    +-- ConditionFailedError   a conditional write found the item other than expected
     |    +-- FencedError            another worker owns the shard now: stop as if the lease were lost
     +-- RegistryError               a device registry entry refused: a hostile value, a device not registered
     +-- DeviceError                 the box's meter, spool or broker (device/)
     |    +-- MeterError             the meter could not be read (device/meters.py)
     +-- KinesisError                the bridge's PutRecords kept failing (bridge/kinesis.py)
     +-- BridgeError                 the bridge cannot run (bridge/service.py)
     +-- DeadLetterError             the bridge cannot keep a dead letter (bridge/deadletter.py)
     +-- BrokerError                 the local Mosquitto would not start or stop (devstack/broker.py)

The command line turns every one of them into a one-line message and a non-zero exit.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a record or a reading was not stored."""

    INVALID_JSON = "invalid_json"
    """The record is not UTF-8 JSON or not a JSON object."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """``v`` is missing or not a version this build understands."""
    SCHEMA_VIOLATION = "schema_violation"
    """A required field is missing or has the wrong type or range."""
    SPOOFED_DEVICE_ID = "spoofed_device_id"
    """The payload's ``device_id`` differs from the thing the broker authenticated."""
    NON_FINITE_VALUE = "non_finite_value"
    """A number is NaN or infinite."""
    NEGATIVE_VALUE = "negative_value"
    """A register, power, voltage or current is below zero."""
    FUTURE_TIMESTAMP = "future_timestamp"
    """The reading's ``ts`` lies too far after the moment the rule received it."""
    STALE_TIMESTAMP = "stale_timestamp"
    """The reading's ``ts`` lies further before its receipt than any spool keeps readings."""
    OUT_OF_RANGE = "out_of_range"
    """A number beyond what any meter reports (and what the store can sum)."""
    TOO_LARGE = "too_large"
    """The record is larger than any message IoT Core accepts (plus the rule's fields)."""
    TOO_MANY_READINGS = "too_many_readings"
    """The message carries more readings than any box sends in one message."""
    INVALID_DEVICE_ID = "invalid_device_id"
    """``device_id`` or ``thing`` is not a valid thing name (what IoT Core allows, at most 128 characters)."""
    PARTITION_KEY_MISMATCH = "partition_key_mismatch"
    """The record's Kinesis partition key is not its ``thing``: the topic rule did not put it there."""
    PROCESSING_ERROR = "processing_error"
    """Decoding the record failed in a way no rule above foresaw: kept whole for a look."""


class WattstreamError(Exception):
    """Root of every exception wattstream raises on purpose."""


class ConfigError(WattstreamError):
    """Settings that cannot work together."""


class SinkError(WattstreamError):
    """A store refused a write or kept failing after the retries."""


class ConditionFailedError(SinkError):
    """A conditional write found the item other than expected; ``item`` is the stored one when
    the store returned it (``ReturnValuesOnConditionCheckFailure``), as DynamoDB attribute values."""

    def __init__(self, message: str, item: dict | None = None) -> None:
        super().__init__(message)
        self.item = item


class FencedError(SinkError):
    """Another worker claimed the shard: this one must stop writing and not checkpoint."""


class RegistryError(WattstreamError):
    """A device registry entry that cannot be (``sinks.registry``): a value out of its rules, a
    device registered twice, or a change to a device that is not registered."""


class DeviceError(WattstreamError):
    """The meter, the spool or the broker failed on the box."""
