# The raw archive (raw/dt=YYYY-MM-DD/hour=HH/shard=<id>/..., dead-letter/dt=YYYY-MM-DD/...,
# plus athena-results/ and, with iot_error_action = "s3", iot-errors/) and the bucket that
# receives its server access logs.

# --- Raw archive -----------------------------------------------------------------------------

resource "aws_s3_bucket" "raw" {
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications: the data is read through Athena; add one when a subscriber exists.
  #checkov:skip=CKV_AWS_144:Cross-region replication is opt-in (var.enable_replication, s3_replication.tf): it doubles storage cost.
  bucket        = local.raw_bucket_name
  force_destroy = var.s3_force_destroy
}

resource "aws_s3_bucket_ownership_controls" "raw" {
  bucket = aws_s3_bucket.raw.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "raw" {
  bucket                  = aws_s3_bucket.raw.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "raw" {
  bucket = aws_s3_bucket.raw.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "raw" {
  bucket = aws_s3_bucket.raw.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    # One KMS request per bucket key period instead of per object: far fewer KMS charges.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "raw" {
  bucket        = aws_s3_bucket.raw.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${local.raw_bucket_name}/"
}

data "aws_iam_policy_document" "raw_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.raw.arn, "${aws_s3_bucket.raw.arn}/*"]

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

resource "aws_s3_bucket_policy" "raw" {
  bucket = aws_s3_bucket.raw.id
  policy = data.aws_iam_policy_document.raw_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.raw]
}

resource "aws_s3_bucket_lifecycle_configuration" "raw" {
  bucket = aws_s3_bucket.raw.id

  # Standard -> Standard-IA -> Glacier Instant Retrieval -> Deep Archive, for the archive and
  # the dead letters alike. IA and Glacier IR bill each object as at least 128 KB: with small
  # batches (low max_age_s, few devices per shard) moving them can cost more than keeping them.
  dynamic "rule" {
    for_each = toset(local.raw_prefixes)
    content {
      id     = "tier-${trimsuffix(rule.value, "/")}"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      transition {
        days          = var.raw_transition_ia_days
        storage_class = "STANDARD_IA"
      }

      transition {
        days          = var.raw_transition_glacier_ir_days
        storage_class = "GLACIER_IR"
      }

      transition {
        days          = var.raw_transition_deep_archive_days
        storage_class = "DEEP_ARCHIVE"
      }

      dynamic "expiration" {
        for_each = var.raw_expiration_days > 0 ? [var.raw_expiration_days] : []
        content {
          days = expiration.value
        }
      }

      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_version_expiration_days
      }
    }
  }

  # Bucket-wide: parts of failed multipart uploads are billed until removed.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "expire-athena-results"
    status = "Enabled"

    filter {
      prefix = "athena-results/"
    }

    expiration {
      days = var.athena_results_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # Shard snapshots (the consumer's device state, one object per batch): the consumer deletes
  # each one once no replay can need it; versioning keeps the deleted ones a day for recovery.
  # Never transitioned: the consumer reads the newest at every shard start.
  rule {
    id     = "state-snapshots"
    status = "Enabled"

    filter {
      prefix = local.state_prefix
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "expire-iot-errors"
    status = "Enabled"

    filter {
      prefix = "iot-errors/"
    }

    expiration {
      days = var.log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  lifecycle {
    precondition {
      condition     = var.raw_transition_glacier_ir_days >= var.raw_transition_ia_days + 30
      error_message = "raw_transition_glacier_ir_days must be at least raw_transition_ia_days + 30 (objects must spend 30 days in STANDARD_IA)."
    }
    precondition {
      condition     = var.raw_transition_deep_archive_days >= var.raw_transition_glacier_ir_days + 90
      error_message = "raw_transition_deep_archive_days must be at least raw_transition_glacier_ir_days + 90 (Glacier IR's minimum storage duration)."
    }
    precondition {
      condition     = var.raw_expiration_days == 0 || var.raw_expiration_days >= var.raw_transition_deep_archive_days + 180
      error_message = "raw_expiration_days must be 0 or at least raw_transition_deep_archive_days + 180 (Deep Archive's minimum storage duration)."
    }
  }

  depends_on = [aws_s3_bucket_versioning.raw]
}

# --- Server access log bucket -----------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it into itself would loop.
  #checkov:skip=CKV2_AWS_62:Access logs need no event notifications.
  #checkov:skip=CKV_AWS_144:Access logs are not replicated; they describe this region's bucket only.
  bucket        = local.log_bucket_name
  force_destroy = var.s3_force_destroy
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

# SSE-KMS with the stack's customer-managed key; its key policy lets logging.s3.amazonaws.com
# generate data keys (kms.tf). Server access logging does not work with the AWS-managed
# aws/s3 key; if log objects do not appear, see docs/deploy.md ("Access logs").
resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "S3ServerAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.raw.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

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

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}
