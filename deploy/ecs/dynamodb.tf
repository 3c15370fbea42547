# The two application tables. The KCL's own three tables (lease, WorkerMetricStats,
# CoordinatorState) are created by the KCL at first start; see iam.tf for their permissions
# and docs/deploy.md for deleting them on teardown.

resource "aws_dynamodb_table" "aggregates" {
  name                        = var.aggregates_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "device_id"
  range_key                   = "bucket"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "device_id"
    type = "S"
  }

  attribute {
    name = "bucket"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  ttl {
    attribute_name = var.ttl_attribute_name
    enabled        = true
  }
}

resource "aws_dynamodb_table" "state" {
  name                        = var.state_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "shard_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "shard_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  ttl {
    attribute_name = var.ttl_attribute_name
    enabled        = true
  }
}
