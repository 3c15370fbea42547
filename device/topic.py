"""The topic a box publishes to: its own ``energy/consumption/<thing>``, or the same behind
AWS IoT Basic Ingest's ``$aws/rules/<rule>/`` prefix.

Basic Ingest hands a message straight to the named topic rule, skipping the message broker, so
IoT Core bills no messaging for it (rules triggered and actions still are). The rules engine
strips the ``$aws/rules/<rule>`` prefix before the rule runs ("The initial prefix of a Basic
Ingest topic ($aws/rules/rule_name) isn't available to the topic(Decimal) function",
https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html), so the rule's
``topic(3)`` is still the thing name.

Only IoT Core knows these topics. A local Mosquitto has no rules engine: its ACL lets a box
write ``energy/consumption/<its name>`` only, and for MQTT 3.1.1 it acknowledges a denied
publish like any other, so the box would delete from its spool readings nobody received. That
is why ``publish_topic`` refuses a Basic Ingest topic for a broker that is not an IoT Core
endpoint, unless forced (a broker of your own that implements the prefix).
"""

from __future__ import annotations

import re

from readings.errors import ConfigError
from readings.models import topic_for

RULE_NAME = re.compile(r"^[a-zA-Z0-9_]{1,128}$")
"""What AWS IoT allows in a topic rule name (no '-')."""
IOT_CORE_HOST = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$")


def is_iot_core_endpoint(host: str) -> bool:
    """True for an AWS endpoint name such as ``a1b2c3-ats.iot.us-east-1.amazonaws.com``."""
    return bool(IOT_CORE_HOST.match(host.lower().rstrip(".")))


def basic_ingest_topic(rule_name: str, device_id: str) -> str:
    """``$aws/rules/<rule_name>/energy/consumption/<device_id>``; refuses a name AWS would refuse."""
    if not RULE_NAME.match(rule_name):
        raise ConfigError(f"basic ingest rule name {rule_name!r} must match {RULE_NAME.pattern} (no '-')")
    return f"$aws/rules/{rule_name}/{topic_for(device_id)}"


def publish_topic(device_id: str, *, broker_host: str, basic_ingest_rule: str | None, force: bool = False) -> str:
    """The topic of every message of ``device_id``.

    Without a rule: ``energy/consumption/<device_id>``. With one: the Basic Ingest topic, and
    a ``ConfigError`` when ``broker_host`` is no IoT Core endpoint and ``force`` is not set.
    """
    if not basic_ingest_rule:
        return topic_for(device_id)
    topic = basic_ingest_topic(basic_ingest_rule, device_id)
    if not force and not is_iot_core_endpoint(broker_host):
        raise ConfigError(
            f"Basic Ingest ($aws/rules/{basic_ingest_rule}/...) works on AWS IoT Core only, and {broker_host!r} is "
            "not an *.amazonaws.com endpoint: the local broker and bridge take energy/consumption/<thing> only, and "
            "Mosquitto acknowledges a denied MQTT 3.1.1 publish, so readings would leave the spool unstored. "
            "Drop the Basic Ingest rule, or pass --force-basic-ingest (WATTSTREAM_DEVICE_BASIC_INGEST_FORCE=true) "
            "for a broker that handles the prefix."
        )
    return topic
