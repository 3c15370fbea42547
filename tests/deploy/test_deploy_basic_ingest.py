"""Basic Ingest end to end on paper: the topic device/ builds is the one the IoT policy allows,
behind the prefix of the rule Terraform creates, and that rule still keys the stream by thing."""

from __future__ import annotations

from deploy_tf_checks import THING, Module

from device.topic import basic_ingest_topic
from readings.models import thing_from_topic


def _policy_topics(module: Module) -> str:
    statements = module.data("aws_iam_policy_document")["device"]["statement"]
    publish = [st for st in statements if st.get("sid") == "PublishOnlyOwnTopic"]
    assert publish and publish[0]["actions"] == ["iot:Publish"]
    assert publish[0]["resources"] == "${local.device_publish_topics}"
    return str(module.locals["device_publish_topics"])


def test_the_device_topic_is_the_one_the_policy_allows(module: Module) -> None:
    rule_name = module.variables["iot_rule_name"]["default"]
    allowed = f"topic/$aws/rules/${{var.iot_rule_name}}/energy/consumption/{THING}"
    assert allowed in _policy_topics(module)
    # The policy resource with the rule name and a thing filled in is the box's topic.
    filled = allowed.replace("${var.iot_rule_name}", rule_name).replace(THING, "box-0001")
    assert filled == "topic/" + basic_ingest_topic(rule_name, "box-0001")


def test_the_prefix_names_the_rule_terraform_creates(module: Module) -> None:
    rule = module.resources("aws_iot_topic_rule")["consumption"]
    assert rule["name"] == "${var.iot_rule_name}"
    # IoT Core strips $aws/rules/<rule> before the rule runs: topic(3) is the thing on both paths.
    assert rule["kinesis"][0]["partition_key"] == "$${topic(3)}"
    stripped = basic_ingest_topic(module.variables["iot_rule_name"]["default"], "box-0001").split("/", 3)[3]
    assert thing_from_topic(stripped) == "box-0001"


def test_basic_ingest_is_off_unless_enabled(module: Module) -> None:
    topics = _policy_topics(module)
    assert "var.enable_basic_ingest ?" in topics
    assert module.variables["enable_basic_ingest"]["default"] is False
