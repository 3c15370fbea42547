"""Checks over deploy/ecs/ that checkov does not make: parsed with python-hcl2, no provider.

Each checker lives in conftest.py and returns a list of violations; the tests below assert it
is empty on the real module, and non-empty on a mutated copy (so a checker that can never fail
would be caught).
"""

from __future__ import annotations

import re

import pytest
from deploy_tf_checks import (
    EXPECTED_RULE_SQL,
    MODULE_DIR,
    RULE_SQL_FILE,
    THING,
    Module,
    as_list,
    dynamodb_violations,
    first,
    iam_star_violations,
    inline_policy_violations,
    iot_policy_violations,
    kinesis_violations,
    rule_sql_violations,
    s3_violations,
    tls_only_policy_violations,
)

# --- The real module ------------------------------------------------------------------------


def test_one_file_per_concern() -> None:
    names = {p.name for p in MODULE_DIR.glob("*.tf")}
    for required in (
        "versions.tf",
        "providers.tf",
        "variables.tf",
        "outputs.tf",
        "iot.tf",
        "kinesis.tf",
        "ecs.tf",
        "iam.tf",
        "dynamodb.tf",
        "s3.tf",
        "observability.tf",
        "analytics.tf",
    ):
        assert required in names
    assert list((MODULE_DIR / "examples").glob("*.tfvars")), "examples/*.tfvars missing"


def test_versions_pinned(module: Module) -> None:
    terraform = module.files["versions.tf"]["terraform"][0]
    assert re.fullmatch(r">=\s*1\.(6|[7-9]|\d\d)(\.\d+)?", terraform["required_version"])
    aws = terraform["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~>\s*\d+\.\d+", aws["version"]), "pin the AWS provider with ~> MAJOR.MINOR"


def test_every_variable_is_described(module: Module) -> None:
    undescribed = [n for n, v in module.variables.items() if not str(v.get("description", "")).strip()]
    assert not undescribed


# Free-form inputs that have nothing to validate, or are checked by a precondition instead.
UNVALIDATED_OK = {
    "tags",
    "adot_image",
    "container_command",
    "quicksight_principal_arn",
    "enable_replication",
    "enable_basic_ingest",
    "enable_adot_sidecar",
    "enable_quicksight",
    "assign_public_ip",
    "deletion_protection",
    "ecr_force_delete",
    "s3_force_destroy",
    "raw_transition_glacier_ir_days",
    "raw_transition_deep_archive_days",  # preconditions in s3.tf
}


def test_inputs_are_validated(module: Module) -> None:
    missing = [n for n, v in module.variables.items() if n not in UNVALIDATED_OK and not v.get("validation")]
    assert not missing, f"variables without a validation block: {missing}"


def test_rule_sql_is_exact_and_single_sourced(module: Module) -> None:
    assert RULE_SQL_FILE.read_text(encoding="utf-8").strip() == EXPECTED_RULE_SQL
    assert rule_sql_violations(module, RULE_SQL_FILE.read_text(encoding="utf-8")) == []


def test_iot_policy_limits_devices_to_their_thing_name(module: Module) -> None:
    assert iot_policy_violations(module) == []


def test_basic_ingest_topic_is_the_rule_prefix_plus_the_same_topic(module: Module) -> None:
    topics = module.locals["device_publish_topics"]
    assert "var.enable_basic_ingest ?" in topics
    assert f"topic/$aws/rules/${{var.iot_rule_name}}/energy/consumption/{THING}" in topics


def test_no_star_resource_outside_the_allow_list(module: Module) -> None:
    assert iam_star_violations(module) == []


def test_policies_are_policy_documents(module: Module) -> None:
    assert inline_policy_violations(module) == []


def test_kcl_tables_are_scoped_to_the_application_name(module: Module) -> None:
    names = module.locals["kcl_table_names"]
    assert names == [
        "${var.application_name}",
        "${var.application_name}-WorkerMetricStats",
        "${var.application_name}-CoordinatorState",
    ]
    task = module.data("aws_iam_policy_document")["task"]
    kcl = [st for st in as_list(task["statement"]) if st.get("sid") == "KclLeaseTables"]
    assert kcl and kcl[0]["resources"] == "${local.kcl_table_arns}"
    assert "dynamodb:CreateTable" in kcl[0]["actions"]
    # Nothing else in the task role may create or delete tables.
    for st in as_list(task["statement"]):
        if st.get("sid") != "KclLeaseTables":
            assert not {"dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable"} & set(
                as_list(st.get("actions"))
            )


def test_dynamodb_tables_have_pitr_and_customer_kms(module: Module) -> None:
    assert dynamodb_violations(module) == []
    assert set(module.resources("aws_dynamodb_table")) == {"aggregates", "state"}
    aggregates = module.resources("aws_dynamodb_table")["aggregates"]
    assert (aggregates["hash_key"], aggregates["range_key"]) == ("device_id", "bucket")
    assert module.resources("aws_dynamodb_table")["state"]["hash_key"] == "shard_id"


def test_s3_buckets_versioned_kms_private_tls_only(module: Module) -> None:
    assert s3_violations(module) == []
    assert tls_only_policy_violations(module) == []
    assert {"raw", "logs", "replica"} <= set(module.resources("aws_s3_bucket"))


def test_raw_bucket_lifecycle_tiers(module: Module) -> None:
    lifecycle = module.resources("aws_s3_bucket_lifecycle_configuration")["raw"]
    dynamic_rule = first(lifecycle["dynamic"])["rule"]
    content = first(dynamic_rule["content"])
    classes = [t["storage_class"] for t in as_list(content["transition"])]
    assert classes == ["STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"]
    assert lifecycle["lifecycle"][0]["precondition"], "transition day ordering must be enforced"


def test_kinesis_stream_encrypted(module: Module) -> None:
    assert kinesis_violations(module) == []


def test_consumer_container_contract(module: Module) -> None:
    env = module.locals["consumer_environment"]
    required = {
        "WATTSTREAM_REGION",
        "WATTSTREAM_STREAM_NAME",
        "WATTSTREAM_APPLICATION_NAME",
        "WATTSTREAM_AGGREGATES_TABLE",
        "WATTSTREAM_STATE_TABLE",
        "WATTSTREAM_RAW_BUCKET",
        "WATTSTREAM_MAX_RECORDS",
        "WATTSTREAM_MAX_AGE_S",
        "WATTSTREAM_MAX_BYTES",
        "WATTSTREAM_METRICS_PORT",
        "WATTSTREAM_SHUTDOWN_GRACE_MS",
        "WATTSTREAM_WORK_DIR",
        "WATTSTREAM_METRICS_DIR",
    }
    assert required <= set(env), sorted(required - set(env))
    container = module.locals["consumer_container"]
    assert container["readonlyRootFilesystem"] is True
    assert container["user"] == "${var.container_user}"
    assert container["stopTimeout"] == "${var.stop_timeout_s}"
    mounts = {m["containerPath"] for m in container["mountPoints"]}
    assert {"${local.scratch_path}", "/tmp"} <= mounts
    assert module.locals["work_dir"].startswith(module.locals["scratch_path"])
    assert module.locals["metrics_dir"].startswith(module.locals["scratch_path"])
    assert "/metrics" in " ".join(container["healthCheck"]["command"])
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert module.variables["stop_timeout_s"]["validation"], "stop_timeout_s must be capped at 120"


def test_autoscaling_tops_out_at_the_shard_count(module: Module) -> None:
    target = module.resources("aws_appautoscaling_target")["consumer"]
    assert target["max_capacity"] == "${max(var.min_tasks, local.max_tasks)}"
    assert "var.shard_count" in module.locals["max_tasks"]
    alarms = module.resources("aws_cloudwatch_metric_alarm")
    for name in ("scale_out", "scale_in"):
        assert alarms[name]["metric_name"] == "GetRecords.IteratorAgeMilliseconds"


def test_alarms_cover_the_failure_modes(module: Module) -> None:
    alarms = module.resources("aws_cloudwatch_metric_alarm")
    text = repr(alarms)
    for needle in (
        "GetRecords.IteratorAgeMilliseconds",
        "wattstream_processor_errors_total",
        "wattstream_dead_letters_total",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
        "SUM(Failure)",
        "RuleMessageThrottled",
    ):
        assert needle in text, needle
    topic = module.resources("aws_sns_topic")["alarms"]
    assert "aws_kms_key." in topic["kms_master_key_id"]


# --- The checkers can fail ------------------------------------------------------------------


def _statements(module: Module, doc: str) -> list[dict]:
    return module.data("aws_iam_policy_document")[doc]["statement"]


def test_star_checker_catches_a_star_resource(mutable_module: Module) -> None:
    _statements(mutable_module, "task").append({"sid": "Sneaky", "actions": ["s3:GetObject"], "resources": ["*"]})
    problems = iam_star_violations(mutable_module)
    assert any("Sneaky" in p and "allow-list" in p for p in problems), problems


def test_star_checker_catches_a_star_inside_an_expression(mutable_module: Module) -> None:
    _statements(mutable_module, "task").append(
        {"sid": "Hidden", "actions": ["kinesis:GetRecords"], "resources": '${concat(["*"], local.kcl_table_arns)}'}
    )
    assert any("Hidden" in p for p in iam_star_violations(mutable_module))


def test_star_checker_needs_the_comment_and_the_condition(mutable_module: Module) -> None:
    task = _statements(mutable_module, "task")
    metrics = next(st for st in task if st.get("sid") == "KclMetrics")
    metrics.pop("__comments__", None)
    metrics.pop("condition", None)
    problems = iam_star_violations(mutable_module)
    assert any("without a comment" in p for p in problems), problems
    assert any("cloudwatch:namespace" in p for p in problems), problems


def test_inline_policy_checker_catches_jsonencode(mutable_module: Module) -> None:
    mutable_module.resources("aws_iam_role_policy")["task"]["policy"] = "${jsonencode({Statement = []})}"
    assert inline_policy_violations(mutable_module)


def test_iot_checker_catches_a_wildcard_topic(mutable_module: Module) -> None:
    device = _statements(mutable_module, "device")
    publish = next(st for st in device if "iot:Publish" in st["actions"])
    publish["resources"] = ["${local.iot_arn_prefix}:topic/energy/consumption/*"]
    assert iot_policy_violations(mutable_module)


def test_iot_checker_catches_a_fixed_client_id(mutable_module: Module) -> None:
    device = _statements(mutable_module, "device")
    connect = next(st for st in device if "iot:Connect" in st["actions"])
    connect["resources"] = ["${local.iot_arn_prefix}:client/box-1"]
    assert iot_policy_violations(mutable_module)


def test_sql_checker_catches_a_changed_rule(mutable_module: Module) -> None:
    assert rule_sql_violations(mutable_module, EXPECTED_RULE_SQL.replace("topic(3)", "topic(2)"))
    rule = mutable_module.resources("aws_iot_topic_rule")["consumption"]
    rule["sql"] = "SELECT * FROM 'energy/#'"
    assert rule_sql_violations(mutable_module, EXPECTED_RULE_SQL)


def test_sql_checker_catches_a_wrong_partition_key(mutable_module: Module) -> None:
    first(mutable_module.resources("aws_iot_topic_rule")["consumption"]["kinesis"])["partition_key"] = "$${newuuid()}"
    assert any("partition key" in p for p in rule_sql_violations(mutable_module, EXPECTED_RULE_SQL))


def test_dynamodb_checker_catches_missing_pitr_and_kms(mutable_module: Module) -> None:
    table = mutable_module.resources("aws_dynamodb_table")["state"]
    table["point_in_time_recovery"] = [{"enabled": False}]
    table["server_side_encryption"] = [{"enabled": True}]
    problems = dynamodb_violations(mutable_module)
    assert any("point_in_time_recovery" in p for p in problems)
    assert any("KMS" in p for p in problems)


def test_s3_checker_catches_sse_s3_and_missing_versioning(mutable_module: Module) -> None:
    mutable_module.files["s3.tf"]["resource"].append({"aws_s3_bucket": {"unversioned": {"bucket": "x"}}})
    sse = mutable_module.resources("aws_s3_bucket_server_side_encryption_configuration")["logs"]
    sse["rule"] = [{"apply_server_side_encryption_by_default": [{"sse_algorithm": "AES256"}]}]
    problems = s3_violations(mutable_module)
    assert any("aws_s3_bucket.unversioned" in p and "versioning" in p for p in problems)
    assert any("aws_s3_bucket.logs" in p and "SSE-KMS" in p for p in problems)


def test_kinesis_checker_catches_an_unencrypted_stream(mutable_module: Module) -> None:
    stream = mutable_module.resources("aws_kinesis_stream")["readings"]
    stream["encryption_type"] = "NONE"
    assert kinesis_violations(mutable_module)


@pytest.mark.parametrize("bad", ["SELECT * FROM 'energy/consumption/+'", ""])
def test_rule_sql_file_comparison_is_exact(module: Module, bad: str) -> None:
    assert rule_sql_violations(module, bad)
