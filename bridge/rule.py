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
- A payload that is not a JSON object (not UTF-8, not JSON, an array, a number, or JSON with
  ``NaN``/``Infinity``) returns ``None``: IoT Core cannot evaluate ``*, …`` on it and runs the
  rule's error action. The bridge logs and counts it (``rule_failed``) and acknowledges the
  message, as IoT Core does: the box's QoS 1 contract ends at the broker.
- A topic outside the filter returns ``None`` (the rule would not fire).
"""

from __future__ import annotations

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


def _load_object(payload: bytes) -> dict[str, Any] | None:
    # orjson is strict JSON: it refuses NaN/Infinity literals and invalid UTF-8, as IoT Core does
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def apply_rule(topic: str, payload: bytes, received_ms: int) -> bytes | None:
    """The Kinesis record the rule makes of one message, or None when the rule fails/skips."""
    thing = topic_matches(topic)
    if thing is None:
        return None
    doc = _load_object(payload)
    if doc is None:
        return None
    doc.pop("thing", None)
    doc.pop("received_ms", None)
    doc["thing"] = thing
    doc["received_ms"] = received_ms
    return orjson.dumps(doc)
