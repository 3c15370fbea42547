# Metrics (ADOT sidecar -> EMF), alarms (-> SNS, KMS-encrypted) and a dashboard.

locals {
  metrics_job = "${var.name_prefix}-consumer"

  adot_config = templatefile("${path.module}/adot-config.yaml.tftpl", {
    scrape_interval_s = var.scrape_interval_s
    job               = local.metrics_job
    metrics_port      = var.metrics_port
    region            = var.region
    namespace         = var.metrics_namespace
    log_group         = aws_cloudwatch_log_group.emf.name
  })

  # Dimensions of the EMF metrics the alarms read (see adot-config.yaml.tftpl).
  emf_dimensions = { job = local.metrics_job }

  alarm_actions = [aws_sns_topic.alarms.arn]
}

resource "aws_ssm_parameter" "adot_config" {
  name        = "/${var.name_prefix}/adot/config"
  description = "ADOT collector config of the wattstream consumer sidecar"
  type        = "SecureString"
  key_id      = aws_kms_key.data.arn
  value       = local.adot_config
}

resource "aws_cloudwatch_log_group" "emf" {
  #checkov:skip=CKV_AWS_338:EMF log events only carry metrics CloudWatch has already extracted; var.log_retention_days (default 90) is enough.
  name              = local.emf_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

# --- Alarm topic ----------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.data.arn
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisStack"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${var.name_prefix}-*"]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- Alarms ---------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.name_prefix}-kinesis-iterator-age"
  alarm_description   = "The consumer is ${var.iterator_age_alarm_ms} ms or more behind ${var.stream_name}; records expire after ${var.stream_retention_hours} h."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.readings.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching" # no GetRecords at all means no consumer
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "processor_errors" {
  alarm_name          = "${var.name_prefix}-processor-errors"
  alarm_description   = "The consumer's record processors raised errors (wattstream_processor_errors_total); see the consumer log group."
  namespace           = var.metrics_namespace
  metric_name         = "wattstream_processor_errors_total"
  dimensions          = local.emf_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name_prefix}-dead-letters"
  alarm_description   = "Readings were rejected to dead-letter/ in ${local.raw_bucket_name} (wattstream_dead_letters_total)."
  namespace           = var.metrics_namespace
  metric_name         = "wattstream_dead_letters_total"
  dimensions          = local.emf_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "dynamodb_throttles" {
  for_each = {
    aggregates = aws_dynamodb_table.aggregates.name
    state      = aws_dynamodb_table.state.name
  }

  alarm_name          = "${var.name_prefix}-dynamodb-throttles-${each.key}"
  alarm_description   = "DynamoDB throttled reads or writes on ${each.value} (the flush slows down and retries)."
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "throttles"
    expression  = "FILL(reads, 0) + FILL(writes, 0)"
    label       = "Throttle events"
    return_data = true
  }

  metric_query {
    id = "reads"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "ReadThrottleEvents"
      dimensions  = { TableName = each.value }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "writes"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "WriteThrottleEvents"
      dimensions  = { TableName = each.value }
      stat        = "Sum"
      period      = 300
    }
  }
}

# AWS/IoT rule metrics (AWS IoT docs, "Rule metrics" / "Rule action metrics"): TopicMatch,
# ParseError, RuleMessageThrottled, RuleNotFound have the RuleName dimension; the action
# metrics Success / Failure / ErrorActionSuccess / ErrorActionFailure have RuleName AND
# ActionType, so they are summed here with a Metrics Insights query over RuleName only.
resource "aws_cloudwatch_metric_alarm" "iot_rule_action_failures" {
  alarm_name          = "${var.name_prefix}-iot-rule-action-failures"
  alarm_description   = "The topic rule ${var.iot_rule_name} failed to put messages on Kinesis (the error action got them)."
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "failures"
    expression  = "SELECT SUM(Failure) FROM SCHEMA(\"AWS/IoT\", ActionType, RuleName) WHERE RuleName = '${var.iot_rule_name}'"
    period      = 300
    label       = "Rule action failures"
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "iot_rule_throttled" {
  alarm_name          = "${var.name_prefix}-iot-rule-throttled"
  alarm_description   = "The rules engine throttled messages for ${var.iot_rule_name} (RuleMessageThrottled)."
  namespace           = "AWS/IoT"
  metric_name         = "RuleMessageThrottled"
  dimensions          = { RuleName = aws_iot_topic_rule.consumption.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "iot_rule_parse_errors" {
  alarm_name          = "${var.name_prefix}-iot-rule-parse-errors"
  alarm_description   = "Devices published payloads that are not JSON to energy/consumption/+ (ParseError)."
  namespace           = "AWS/IoT"
  metric_name         = "ParseError"
  dimensions          = { RuleName = aws_iot_topic_rule.consumption.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- Dashboard ------------------------------------------------------------------------------

locals {
  emf_metric = { for m in [
    "wattstream_records_total",
    "wattstream_readings_stored_total",
    "wattstream_rejected_total",
    "wattstream_batches_flushed_total",
    "wattstream_dynamodb_writes_total",
    "wattstream_s3_puts_total",
    "wattstream_dead_letters_total",
    "wattstream_processor_errors_total",
  ] : m => [var.metrics_namespace, m, "job", local.metrics_job, { stat = "Sum" }] }

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title  = "IoT rule ${var.iot_rule_name}"
        region = var.region
        stat   = "Sum"
        period = 60
        metrics = [
          ["AWS/IoT", "TopicMatch", "RuleName", var.iot_rule_name],
          ["AWS/IoT", "ParseError", "RuleName", var.iot_rule_name],
          ["AWS/IoT", "RuleMessageThrottled", "RuleName", var.iot_rule_name],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title  = "Kinesis ${var.stream_name}"
        region = var.region
        period = 60
        metrics = [
          ["AWS/Kinesis", "IncomingRecords", "StreamName", var.stream_name, { stat = "Sum" }],
          ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", var.stream_name, { stat = "Maximum", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "Consumer throughput"
        region = var.region
        period = 300
        metrics = [
          local.emf_metric["wattstream_records_total"],
          local.emf_metric["wattstream_readings_stored_total"],
          local.emf_metric["wattstream_batches_flushed_total"],
          local.emf_metric["wattstream_dynamodb_writes_total"],
          local.emf_metric["wattstream_s3_puts_total"],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title  = "Rejections, dead letters, errors"
        region = var.region
        period = 300
        metrics = [
          local.emf_metric["wattstream_rejected_total"],
          local.emf_metric["wattstream_dead_letters_total"],
          local.emf_metric["wattstream_processor_errors_total"],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title  = "Batches and lag"
        region = var.region
        period = 300
        metrics = [
          [var.metrics_namespace, "wattstream_flush_duration_seconds", "job", local.metrics_job, { stat = "Average" }],
          [var.metrics_namespace, "wattstream_batch_records", "job", local.metrics_job, { stat = "Average" }],
          [var.metrics_namespace, "wattstream_millis_behind_latest", "job", local.metrics_job, { stat = "Maximum", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title  = "ECS service and DynamoDB"
        region = var.region
        period = 300
        metrics = [
          ["AWS/ECS", "CPUUtilization", "ClusterName", local.cluster_name, "ServiceName", local.service_name, { stat = "Average" }],
          ["AWS/ECS", "MemoryUtilization", "ClusterName", local.cluster_name, "ServiceName", local.service_name, { stat = "Average" }],
          ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", var.aggregates_table_name, { stat = "Sum", yAxis = "right" }],
          ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", var.aggregates_table_name, { stat = "Sum", yAxis = "right" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name_prefix}-consumer"
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
