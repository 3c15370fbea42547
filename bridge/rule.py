"""The IoT Core topic rule, as a pure function.

Production runs this rule in IoT Core (``deploy/ecs/rule.sql``)::

    SELECT *, topic(3) AS thing, timestamp() AS received_ms FROM 'energy/consumption/+'

``apply_rule`` does exactly that to one MQTT message:

- ``*``: every key of the payload's JSON object, in the payload's order;
- ``topic(3) AS thing``: the third level of the topic, i.e. the thing whose certificate was
  allowed to publish there (the broker ACL ties topic to identity), so ``thing`` can be trusted
  and ``device_id`` cannot;
- ``timestamp() AS received_ms``: when the broker received the message (epoch ms).

Decisions where IoT Core has no exact local twin (documented in docs/device.md):

- A payload key named ``thing`` or ``received_ms`` is replaced by the rule's value (the
  projection comes after ``*``): a box cannot forge its identity or the receipt time.
- A payload the rule cannot turn into a record fails it: ``evaluate`` returns
  ``RuleFailed(reason)`` and ``apply_rule`` None, where IoT Core runs the rule's error action.
  Reasons: ``not_utf8``; ``not_json`` (including ``NaN``/``Infinity`` literals and numbers
  beyond the double range); ``not_an_object`` (an array, a number, a string); ``not_encodable``
  (nesting of 254 levels or more, which the encoder refuses; integers beyond 64 bits; lone UTF-16
  surrogates: a record would carry a value the box never sent, or none at all). The bridge
  writes the message to its dead-letter file, counts it (``rule_failed{reason}``) and
  acknowledges it, as IoT Core does: the box's QoS 1 contract ends at the broker.
- A topic outside the filter fails with ``topic_outside_filter`` (the rule would not fire;
  the bridge subscribes to the filter only, so it does not happen there).

Neither function raises, whatever the payload: they run on paho's network thread, which an
exception would end.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

RULE_SQL = "SELECT *, topic(3) AS thing, timestamp() AS received_ms FROM 'energy/consumption/+'"
TOPIC_FILTER = "energy/consumption/+"


def topic_matches(topic: str) -> str | None:
    """``topic(3)`` when ``topic`` matches ``energy/consumption/+``, else None."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "energy" or parts[1] != "consumption" or not parts[2]:
        return None
    # MQTT forbids wildcards in a publish topic; a broker would have refused it already.
    if "+" in parts[2] or "#" in parts[2]:
        return None
    return parts[2]


@dataclass(frozen=True, slots=True)
class RuleFailed:
    """The rule could not make a record of the message; ``reason`` is a code, not prose."""

    reason: str


def _reject_constant(literal: str) -> float:
    raise ValueError(f"{literal} is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        # 1e400 parses as infinity, which the encoder would write as null
        raise ValueError(f"{literal} is beyond the double range")
    return value


def _load(payload: bytes) -> dict[str, Any] | RuleFailed:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return RuleFailed("not_utf8")
    # The standard library parser keeps integers exact (orjson reads those beyond 64 bits as
    # floats, silently), so the encoder below can refuse them instead of changing them.
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return RuleFailed("not_json")
    return doc if isinstance(doc, dict) else RuleFailed("not_an_object")


def evaluate(topic: str, payload: bytes, received_ms: int) -> bytes | RuleFailed:
    """The Kinesis record the rule makes of one message, or why it makes none. Never raises."""
    thing = topic_matches(topic)
    if thing is None:
        return RuleFailed("topic_outside_filter")
    doc = _load(payload)
    if isinstance(doc, RuleFailed):
        return doc
    doc.pop("thing", None)
    doc.pop("received_ms", None)
    doc["thing"] = thing
    doc["received_ms"] = received_ms
    try:
        return orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError):
        return RuleFailed("not_encodable")


def apply_rule(topic: str, payload: bytes, received_ms: int) -> bytes | None:
    """The Kinesis record the rule makes of one message, or None when the rule fails/skips."""
    outcome = evaluate(topic, payload, received_ms)
    return None if isinstance(outcome, RuleFailed) else outcome
