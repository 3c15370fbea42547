# The consumer's two roles. Every statement names the exact actions the consumer (or ECS on its
# behalf) calls and the exact resources. A "*" resource appears only where the AWS action
# supports nothing else; each such statement says so (tests/deploy enforces the allow-list).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

# --- Execution role: what ECS itself needs to start the task --------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-consumer-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "EcrAuthToken"
    # ecr:GetAuthorizationToken supports only Resource "*" (it is not tied to a repository).
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullConsumerImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = [aws_ecr_repository.consumer.arn]
  }

  statement {
    sid     = "ContainerLogs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "${aws_cloudwatch_log_group.consumer.arn}:*",
    ]
  }

  statement {
    sid       = "AdotConfigFromSsm"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.adot_config.arn]
  }

  statement {
    sid       = "DecryptSecureStringParameter"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-consumer-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- Task role: what the consumer (KCL daemon + Python processors + ADOT sidecar) calls -----

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-consumer-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  # KCL polling retrieval (consumer/daemon.py sets retrievalMode = POLLING): no enhanced
  # fan-out, so no RegisterStreamConsumer/SubscribeToShard. ListStreams is not needed (the KCL
  # is given the stream name), so nothing here needs "*".
  statement {
    sid = "ReadStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.readings.arn]
  }

  # The KCL creates and manages its lease, WorkerMetricStats and CoordinatorState tables, for
  # this application name only.
  statement {
    sid = "KclLeaseTables"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DescribeTable",
      "dynamodb:UpdateTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Scan",
      "dynamodb:Query",
    ]
    resources = local.kcl_table_arns
  }

  statement {
    sid       = "KclLeaseOwnerIndex"
    actions   = ["dynamodb:Query"]
    resources = ["${local.kcl_table_arns[0]}/index/*"]
  }

  statement {
    sid = "ApplicationTables"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:Query",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:ConditionCheckItem",
    ]
    resources = [aws_dynamodb_table.aggregates.arn, aws_dynamodb_table.state.arn]
  }

  # WATTSTREAM_WORKER_ID=slot: a task releases its worker slot (an item of the state table
  # keyed worker-slot#<k>) when it stops; it may delete those items only.
  statement {
    sid       = "ReleaseWorkerSlots"
    actions   = ["dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.state.arn]

    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["worker-slot#*"]
    }
  }

  # A starting task lists the worker slots to take an expired one first (one small scan of
  # the state table: one item per shard and per slot, all readable by GetItem already).
  statement {
    sid       = "ListWorkerSlots"
    actions   = ["dynamodb:Scan"]
    resources = [aws_dynamodb_table.state.arn]
  }

  statement {
    sid       = "RawArchiveObjects"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = [for p in local.raw_prefixes : "${aws_s3_bucket.raw.arn}/${p}*"]
  }

  # The shard snapshots: written per flush, read at shard start, deleted once superseded.
  statement {
    sid       = "ShardSnapshots"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.raw.arn}/${local.state_prefix}*"]
  }

  # ListBucket only so that HeadObject/GetObject of a missing key answers 404, not 403.
  statement {
    sid       = "RawArchiveListOwnPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.raw.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in concat(local.raw_prefixes, [local.state_prefix]) : "${p}*"]
    }
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "kinesis.${var.region}.amazonaws.com",
        "dynamodb.${var.region}.amazonaws.com",
        "s3.${var.region}.amazonaws.com",
        # Alert events go to the KMS-encrypted alarm topic.
        "sns.${var.region}.amazonaws.com",
      ]
    }
  }

  # Device alert events (README: Alerts), published by the record processors at each flush.
  statement {
    sid       = "PublishDeviceAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
  }

  statement {
    sid = "KclMetrics"
    # cloudwatch:PutMetricData supports only Resource "*" (metrics are not resources);
    # the namespace condition limits it to the KCL's namespace (= the application name).
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.application_name]
    }
  }

  # The ADOT sidecar's EMF exporter writes metrics as log events to one pre-created group.
  statement {
    sid       = "EmfMetricsLogs"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.emf.arn, "${aws_cloudwatch_log_group.emf.arn}:*"]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "consume-readings"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
