# SQL over the raw archive: a Glue catalog table with partition projection (no crawler, no
# MSCK REPAIR) and an Athena workgroup whose results are KMS-encrypted. QuickSight reads the
# archive through Athena: it has no DynamoDB connector, so the aggregates table is not a
# QuickSight source (export it to S3 if dashboards need it).

resource "aws_glue_catalog_database" "this" {
  name        = var.glue_database_name
  description = "wattstream raw archive (s3://${local.raw_bucket_name}/raw/ and dead-letter/)"
}

locals {
  # Lines written by consumer/processor.py (PendingRecord.raw_line / dead_letter_line).
  raw_line_columns = [
    { name = "shard_id", type = "string", comment = "Kinesis shard" },
    { name = "sequence_number", type = "string", comment = "Kinesis sequence number" },
    { name = "partition_key", type = "string", comment = "thing name (the rule's partition key)" },
    { name = "approximate_arrival_ms", type = "bigint", comment = "Kinesis arrival time, epoch ms" },
    { name = "data", type = "string", comment = "the topic rule's JSON record (payload + thing + received_ms)" },
    { name = "data_b64", type = "string", comment = "the record, base64, when it was not UTF-8" },
  ]
  dead_letter_columns = concat(local.raw_line_columns, [
    { name = "reason", type = "string", comment = "reason of the record's first rejection" },
    { name = "detail", type = "string", comment = "detail of the first rejection" },
    { name = "rejected_at_ms", type = "bigint", comment = "arrival time of the rejected record" },
    { name = "reading_index", type = "int", comment = "index in the message of the first rejected reading" },
    { name = "rejections_total", type = "int", comment = "rejections of the record (readings, or 1 for the whole record)" },
    { name = "rejections", type = "array<struct<reason:string,detail:string,reading_index:int>>", comment = "the first 20 rejections" },
  ])

  # Partition projection: dt is a date, hour 00-23, shard injected (queries must name it:
  # WHERE shard = 'shardId-000000000000', or IN (...)).
  # gzip JSON lines in dt=/hour= folders, the partitions projected (no crawler).
  dated_json_lines = {
    EXTERNAL                      = "TRUE"
    classification                = "json"
    compressionType               = "gzip"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "2024-01-01,NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.hour.type"        = "integer"
    "projection.hour.range"       = "0,23"
    "projection.hour.digits"      = "2"
  }

  projected_tables = {
    raw_readings = { prefix = "raw", columns = local.raw_line_columns }
    dead_letters = { prefix = "dead-letter", columns = local.dead_letter_columns }
  }
}

resource "aws_glue_catalog_table" "archive" {
  for_each = local.projected_tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  table_type    = "EXTERNAL_TABLE"
  description   = "gzip JSON lines under s3://${local.raw_bucket_name}/${each.value.prefix}/"

  parameters = merge(local.dated_json_lines, {
    "projection.shard.type"     = "injected"
    "storage.location.template" = "s3://${aws_s3_bucket.raw.id}/${each.value.prefix}/dt=$${dt}/hour=$${hour}/shard=$${shard}/"
  })

  partition_keys {
    name = "dt"
    type = "string"
  }

  partition_keys {
    name = "hour"
    type = "string"
  }

  partition_keys {
    name = "shard"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.raw.id}/${each.value.prefix}/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        "ignore.malformed.json" = "true"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = "${var.name_prefix}-analytics"
  description   = "Queries over the wattstream raw archive"
  force_destroy = true # saved query results are disposable; the archive is not touched

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${aws_s3_bucket.raw.id}/athena-results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.data.arn
      }
    }
  }
}

resource "aws_quicksight_data_source" "athena" {
  count = var.enable_quicksight ? 1 : 0

  data_source_id = "${var.name_prefix}-athena"
  name           = "${var.name_prefix} raw archive (Athena)"
  type           = "ATHENA"

  parameters {
    athena {
      work_group = aws_athena_workgroup.this.name
    }
  }

  dynamic "permission" {
    for_each = var.quicksight_principal_arn == null ? [] : [var.quicksight_principal_arn]
    content {
      principal = permission.value
      actions = [
        "quicksight:DescribeDataSource",
        "quicksight:DescribeDataSourcePermissions",
        "quicksight:PassDataSource",
        "quicksight:UpdateDataSource",
        "quicksight:DeleteDataSource",
        "quicksight:UpdateDataSourcePermissions",
      ]
    }
  }
}
