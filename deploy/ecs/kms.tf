# One customer-managed key for the data at rest of this stack in the primary region: Kinesis,
# DynamoDB, S3 (raw + access logs), ECR, CloudWatch Logs, SNS, SSM, Athena results.
# The replica bucket's key lives in s3_replication.tf (KMS keys are regional).

resource "aws_kms_key" "data" {
  description             = "${var.name_prefix}: data at rest (Kinesis, DynamoDB, S3, ECR, logs, SNS)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_data.json
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name_prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

# A key policy's "Resource": "*" means "this key": a key policy cannot name another resource.
# tests/deploy treats aws_iam_policy_document blocks named kms_* as key policies.
data "aws_iam_policy_document" "kms_data" {
  #checkov:skip=CKV_AWS_109:Key policy: Resource "*" is this key only; the account-root statement is the AWS default that delegates to IAM.
  #checkov:skip=CKV_AWS_111:Key policy: Resource "*" is this key only; write access is delegated to IAM policies scoped per role.
  #checkov:skip=CKV_AWS_356:Key policy: Resource "*" is the only value a key policy accepts (it means this key).
  statement {
    sid       = "AccountRootDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsOfThisStack"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/${var.name_prefix}/*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedSns"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "S3ServerAccessLogDelivery"
    actions   = ["kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
