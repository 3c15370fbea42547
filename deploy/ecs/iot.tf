# IoT Core: the thing type, the device policy and the topic rule that feeds Kinesis.
#
# Devices connect with an X.509 certificate attached to a thing; the MQTT client id must equal
# the thing name, and a device may publish only to its own topic.
#
# Basic Ingest: a device may instead publish to $aws/rules/<rule>/energy/consumption/<thing>.
# The rules engine strips the $aws/rules/<rule> prefix before evaluating the rule: AWS IoT docs
# ("Reducing messaging costs with Basic Ingest"): "The initial prefix of a Basic Ingest topic
# ($aws/rules/rule-name) isn't available to the topic(Decimal) function." So topic(3) is still
# the thing name and the same SQL serves both paths. The same page: "If you define a rule that's
# invoked only with Basic Ingest, the FROM clause is optional", i.e. the FROM filter is not what
# selects Basic Ingest messages: the policy below is. It allows the prefix only in front of the
# device's own energy/consumption/<thing>, bound to the thing name like the plain topic, so what
# the rule sees as topic(3) is the publisher's thing name on both paths.

resource "aws_iot_thing_type" "box" {
  name = var.thing_type_name

  properties {
    description           = "wattstream energy box: publishes readings to energy/consumption/<thing>"
    searchable_attributes = ["site", "model"]
  }
}

locals {
  iot_arn_prefix = "arn:${local.partition}:iot:${var.region}:${local.account_id}"

  device_publish_topics = concat(
    ["${local.iot_arn_prefix}:topic/energy/consumption/&{iot:Connection.Thing.ThingName}"],
    var.enable_basic_ingest ? ["${local.iot_arn_prefix}:topic/$aws/rules/${var.iot_rule_name}/energy/consumption/&{iot:Connection.Thing.ThingName}"] : [],
  )
}

# IoT policy in IAM policy grammar. aws_iam_policy_document turns "&{...}" into the policy
# variable "${...}" in its JSON output (HCL would otherwise try to interpolate "${...}").
data "aws_iam_policy_document" "device" {
  statement {
    sid       = "ConnectOnlyAsOwnThingName"
    effect    = "Allow"
    actions   = ["iot:Connect"]
    resources = ["${local.iot_arn_prefix}:client/&{iot:Connection.Thing.ThingName}"]

    # Only a certificate attached to a registered thing may connect at all.
    condition {
      test     = "Bool"
      variable = "iot:Connection.Thing.IsAttached"
      values   = ["true"]
    }
  }

  statement {
    sid       = "PublishOnlyOwnTopic"
    effect    = "Allow"
    actions   = ["iot:Publish"]
    resources = local.device_publish_topics
  }
}

resource "aws_iot_policy" "device" {
  name   = "${var.name_prefix}-device"
  policy = data.aws_iam_policy_document.device.json
}

resource "aws_iot_topic_rule" "consumption" {
  name        = var.iot_rule_name
  description = "energy/consumption/<thing> -> Kinesis ${var.stream_name} (partition key = thing)"
  enabled     = true
  sql         = local.rule_sql
  sql_version = "2016-03-23"

  kinesis {
    stream_name   = aws_kinesis_stream.readings.name
    partition_key = "$${topic(3)}"
    role_arn      = aws_iam_role.iot_rule.arn
  }

  error_action {
    dynamic "cloudwatch_logs" {
      for_each = var.iot_error_action == "cloudwatch_logs" ? [1] : []
      content {
        log_group_name = aws_cloudwatch_log_group.iot_rule_errors.name
        role_arn       = aws_iam_role.iot_rule.arn
      }
    }

    dynamic "s3" {
      for_each = var.iot_error_action == "s3" ? [1] : []
      content {
        bucket_name = aws_s3_bucket.raw.id
        key         = "iot-errors/dt=$${parse_time(\"yyyy-MM-dd\", timestamp())}/$${topic(3)}/$${newuuid()}.json"
        role_arn    = aws_iam_role.iot_rule.arn
      }
    }
  }
}

# Always created (cheap when empty) so switching iot_error_action needs no other change.
resource "aws_cloudwatch_log_group" "iot_rule_errors" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 90 days); a year of logs is the operator's cost decision.
  name              = local.iot_error_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

# --- The rule's role ------------------------------------------------------------------------

data "aws_iam_policy_document" "iot_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["iot.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["${local.iot_arn_prefix}:rule/${var.iot_rule_name}"]
    }
  }
}

resource "aws_iam_role" "iot_rule" {
  name               = "${var.name_prefix}-iot-rule"
  assume_role_policy = data.aws_iam_policy_document.iot_assume.json
}

data "aws_iam_policy_document" "iot_rule" {
  statement {
    sid       = "PutReadingsOnStream"
    actions   = ["kinesis:PutRecord"]
    resources = [aws_kinesis_stream.readings.arn]
  }

  statement {
    sid       = "EncryptForKinesisAndS3"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }

  statement {
    sid       = "ErrorActionLogs"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.iot_rule_errors.arn}:*"]
  }

  statement {
    sid       = "ErrorActionS3"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.raw.arn}/iot-errors/*"]
  }
}

resource "aws_iam_role_policy" "iot_rule" {
  name   = "rule-actions"
  role   = aws_iam_role.iot_rule.id
  policy = data.aws_iam_policy_document.iot_rule.json
}
