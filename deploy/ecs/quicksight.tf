# A QuickSight dataset of the readings in the raw archive, over Athena (behind
# enable_quicksight, like the data source in analytics.tf). The raw_readings table injects its
# shard partition, so every query of it must name shards; a dataset cannot, so it reads a table
# of its own over the same objects, partitioned by dt and hour only (Athena reads every object
# under an hour's prefix, whichever shard folder holds it). DIRECT_QUERY: no SPICE capacity, each
# visual runs its query (bytes scanned, capped by the workgroup's cutoff), over the last
# quicksight_dataset_days days.

resource "aws_glue_catalog_table" "raw_by_hour" {
  count = var.enable_quicksight ? 1 : 0

  name          = "raw_readings_by_hour"
  database_name = aws_glue_catalog_database.this.name
  table_type    = "EXTERNAL_TABLE"
  description   = "gzip JSON lines under s3://${local.raw_bucket_name}/raw/, every shard (QuickSight's dataset)"

  parameters = merge(local.dated_json_lines, {
    "storage.location.template" = "s3://${aws_s3_bucket.raw.id}/raw/dt=$${dt}/hour=$${hour}/"
  })

  partition_keys {
    name = "dt"
    type = "string"
  }

  partition_keys {
    name = "hour"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.raw.id}/raw/"
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
      for_each = local.raw_line_columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

locals {
  quicksight_readings_columns = [
    { name = "device_id", type = "STRING" },
    { name = "seq", type = "INTEGER" },
    { name = "ts", type = "DATETIME" },
    { name = "energy_wh", type = "DECIMAL" },
    { name = "energy_export_wh", type = "DECIMAL" },
    { name = "power_w", type = "DECIMAL" },
    { name = "dt", type = "STRING" },
    { name = "energy_delta_wh", type = "DECIMAL" },
  ]
}

resource "aws_quicksight_data_set" "readings" {
  count = var.enable_quicksight ? 1 : 0

  data_set_id = "${var.name_prefix}-readings"
  name        = "${var.name_prefix} readings (raw archive)"
  import_mode = "DIRECT_QUERY"

  physical_table_map {
    physical_table_map_id = "readings"

    custom_sql {
      data_source_arn = aws_quicksight_data_source.athena[0].arn
      name            = "readings"
      sql_query = templatefile("${path.module}/quicksight_readings.sql.tftpl", {
        database = aws_glue_catalog_database.this.name
        table    = aws_glue_catalog_table.raw_by_hour[0].name
        days     = var.quicksight_dataset_days
      })

      dynamic "columns" {
        for_each = local.quicksight_readings_columns
        content {
          name = columns.value.name
          type = columns.value.type
        }
      }
    }
  }

  dynamic "permissions" {
    for_each = var.quicksight_principal_arn == null ? [] : [var.quicksight_principal_arn]
    content {
      principal = permissions.value
      actions = [
        "quicksight:DescribeDataSet",
        "quicksight:DescribeDataSetPermissions",
        "quicksight:PassDataSet",
        "quicksight:DescribeIngestion",
        "quicksight:ListIngestions",
        "quicksight:UpdateDataSet",
        "quicksight:DeleteDataSet",
        "quicksight:CreateIngestion",
        "quicksight:CancelIngestion",
        "quicksight:UpdateDataSetPermissions",
      ]
    }
  }
}
