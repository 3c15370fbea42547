# Shared data sources and names. One file per concern beside this one:
#   kms.tf iot.tf kinesis.tf dynamodb.tf s3.tf s3_replication.tf ecr.tf ecs.tf iam.tf
#   autoscaling.tf observability.tf analytics.tf

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.region

  # The topic rule's SQL has ONE source: rule.sql beside this file. The local MQTT bridge's
  # tests compare against the same file (see docs/deploy.md, "The rule SQL").
  rule_sql = trimspace(file("${path.module}/rule.sql"))

  raw_bucket_name     = coalesce(var.raw_bucket_name, "${var.name_prefix}-raw-${local.account_id}-${var.region}")
  log_bucket_name     = "${var.name_prefix}-s3-access-logs-${local.account_id}-${var.region}"
  replica_bucket_name = "${local.raw_bucket_name}-replica-${var.replica_region}"

  # Prefixes the consumer writes (see sinks/archive.py); the lifecycle, replication and the
  # task role are all scoped to them.
  raw_prefixes = ["raw/", "dead-letter/"]
  state_prefix = "state/"

  # The three tables KCL 3.x creates for one application (it names them; we only scope IAM).
  kcl_table_names = [
    var.application_name,
    "${var.application_name}-WorkerMetricStats",
    "${var.application_name}-CoordinatorState",
  ]
  kcl_table_arns = [
    for t in local.kcl_table_names : "arn:${local.partition}:dynamodb:${var.region}:${local.account_id}:table/${t}"
  ]

  # One KCL worker holds at least one shard; more tasks than shards sit idle.
  max_tasks = var.stream_mode == "PROVISIONED" ? var.shard_count : var.on_demand_max_tasks

  # Paths inside the consumer container (on task-scoped ephemeral volumes, since the root
  # filesystem is read-only).
  scratch_path = "/var/lib/wattstream"
  work_dir     = "/var/lib/wattstream/consumer"
  metrics_dir  = "/var/lib/wattstream/metrics"

  consumer_log_group = "/${var.name_prefix}/ecs/consumer"
  emf_log_group      = "/${var.name_prefix}/metrics/emf"
  exec_log_group     = "/${var.name_prefix}/ecs/exec"
  iot_error_group    = "/${var.name_prefix}/iot/rule-errors"

  cluster_name = "${var.name_prefix}-cluster"
  service_name = "${var.name_prefix}-consumer"
}
