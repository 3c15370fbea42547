output "ecr_repository_url" {
  description = "Push the consumer image here: docker push <url>:<image_tag>."
  value       = aws_ecr_repository.consumer.repository_url
}

output "iot_policy_name" {
  description = "Attach this IoT policy to each device certificate."
  value       = aws_iot_policy.device.name
}

output "iot_thing_type_name" {
  description = "Thing type to create device things with."
  value       = aws_iot_thing_type.box.name
}

output "iot_topic_rule_name" {
  description = "Topic rule; with Basic Ingest devices publish to $aws/rules/<this>/energy/consumption/<thing>."
  value       = aws_iot_topic_rule.consumption.name
}

output "device_topic_template" {
  description = "Topic a device publishes to (replace <thing>)."
  value       = var.enable_basic_ingest ? "$aws/rules/${var.iot_rule_name}/energy/consumption/<thing> (or energy/consumption/<thing>)" : "energy/consumption/<thing>"
}

output "kinesis_stream_name" {
  description = "Kinesis stream of the readings."
  value       = aws_kinesis_stream.readings.name
}

output "kinesis_stream_arn" {
  description = "ARN of the Kinesis stream."
  value       = aws_kinesis_stream.readings.arn
}

output "aggregates_table_name" {
  description = "DynamoDB table of aggregates."
  value       = aws_dynamodb_table.aggregates.name
}

output "state_table_name" {
  description = "DynamoDB table of batch manifests."
  value       = aws_dynamodb_table.state.name
}

output "kcl_table_names" {
  description = "Tables the KCL creates itself (not managed by Terraform: delete them on teardown)."
  value       = local.kcl_table_names
}

output "raw_bucket_name" {
  description = "S3 bucket of the raw archive, dead letters and Athena results."
  value       = aws_s3_bucket.raw.id
}

output "access_log_bucket_name" {
  description = "S3 bucket of the raw bucket's server access logs."
  value       = aws_s3_bucket.logs.id
}

output "replica_bucket_name" {
  description = "Cross-region replica bucket (null when replication is off)."
  value       = var.enable_replication ? aws_s3_bucket.replica[0].id : null
}

output "kms_key_arn" {
  description = "Customer-managed KMS key of the stack's data."
  value       = aws_kms_key.data.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "ECS service of the consumer."
  value       = aws_ecs_service.consumer.name
}

output "consumer_log_group" {
  description = "CloudWatch log group of the consumer's (and sidecar's) logs."
  value       = aws_cloudwatch_log_group.consumer.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms publish to."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "athena_workgroup" {
  description = "Athena workgroup for queries over the archive."
  value       = aws_athena_workgroup.this.name
}

output "glue_database" {
  description = "Glue database with the raw_readings and dead_letters tables."
  value       = aws_glue_catalog_database.this.name
}

output "task_role_arn" {
  description = "IAM role of the consumer task."
  value       = aws_iam_role.task.arn
}
