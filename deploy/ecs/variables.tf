# Every input of the stack. docs/deploy.md ("Variables: what each costs or changes") says what
# each one costs and what changing it on a live stack does.

# --- General -------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of the whole stack (IoT Core, Kinesis, ECS, DynamoDB, S3, Athena)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name this stack creates (cluster, roles, buckets, log groups, alarms)."
  type        = string
  default     = "wattstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name_prefix))
    error_message = "name_prefix must be 2-24 characters of a-z, 0-9 and '-', starting with a letter (it ends up in S3 bucket names)."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a destroyed KMS key is deleted (7-30 days). Data encrypted with it is unreadable after that."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "deletion_protection" {
  description = "Protect the DynamoDB tables from deletion. Set to false and apply before `terraform destroy`."
  type        = bool
  default     = true
}

# --- IoT Core ------------------------------------------------------------------------------

variable "thing_type_name" {
  description = "IoT thing type of the energy boxes."
  type        = string
  default     = "wattstream-box"

  validation {
    condition     = can(regex("^[a-zA-Z0-9:_-]{1,128}$", var.thing_type_name))
    error_message = "thing_type_name must be 1-128 characters of letters, digits, ':', '_' and '-'."
  }
}

variable "iot_rule_name" {
  description = "Name of the topic rule. With Basic Ingest, devices publish to $aws/rules/<this name>/energy/consumption/<thing>."
  type        = string
  default     = "wattstream_energy_consumption"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_]{1,128}$", var.iot_rule_name))
    error_message = "iot_rule_name must match ^[a-zA-Z0-9_]+$ (no '-': AWS IoT rule names allow letters, digits and '_' only)."
  }
}

variable "enable_basic_ingest" {
  description = "Also let devices publish to the Basic Ingest topic $aws/rules/<rule>/energy/consumption/<thing> (no IoT messaging charge; bypasses the broker, so no MQTT subscriber sees those messages)."
  type        = bool
  default     = false
}

variable "iot_error_action" {
  description = "Where the topic rule's error action sends messages it could not put on Kinesis: \"cloudwatch_logs\" (a KMS-encrypted log group) or \"s3\" (iot-errors/ in the raw bucket)."
  type        = string
  default     = "cloudwatch_logs"

  validation {
    condition     = contains(["cloudwatch_logs", "s3"], var.iot_error_action)
    error_message = "iot_error_action must be \"cloudwatch_logs\" or \"s3\"."
  }
}

# --- Kinesis -------------------------------------------------------------------------------

variable "stream_name" {
  description = "Kinesis data stream the topic rule writes to (WATTSTREAM_STREAM_NAME)."
  type        = string
  default     = "wattstream-readings"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{1,128}$", var.stream_name))
    error_message = "stream_name must be 1-128 characters of letters, digits, '_', '.' and '-'."
  }
}

variable "stream_mode" {
  description = "Kinesis capacity mode: ON_DEMAND (pay per GB, scales itself, starts at 4 shards) or PROVISIONED (pay per shard-hour, fixed shard_count)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards of a PROVISIONED stream (ignored when ON_DEMAND). Also the most consumer tasks autoscaling starts: one KCL worker per shard is the useful maximum."
  type        = number
  default     = 2

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number between 1 and 500."
  }
}

variable "on_demand_max_tasks" {
  description = "Most consumer tasks when the stream is ON_DEMAND (its shard count is not known at plan time; a new on-demand stream has 4)."
  type        = number
  default     = 4

  validation {
    condition     = var.on_demand_max_tasks >= 1 && var.on_demand_max_tasks <= 100
    error_message = "on_demand_max_tasks must be between 1 and 100."
  }
}

variable "stream_retention_hours" {
  description = "How long Kinesis keeps records (24-8760 h). Past 24 h each extra hour is billed; it is also how long the consumer may be down without losing data."
  type        = number
  default     = 24

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

# --- DynamoDB ------------------------------------------------------------------------------

variable "application_name" {
  description = "KCL application name (WATTSTREAM_APPLICATION_NAME). The KCL names its lease table after it and creates <name>-WorkerMetricStats and <name>-CoordinatorState; the task role may manage those three tables only. Also the CloudWatch namespace of the KCL's own metrics."
  type        = string
  default     = "wattstream-consumer"

  validation {
    # DynamoDB table names are 3-255 characters; the longest derived name adds "-WorkerMetricStats" (18).
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,230}$", var.application_name))
    error_message = "application_name must be 3-230 characters of letters, digits, '_', '.' and '-'."
  }
}

variable "aggregates_table_name" {
  description = "DynamoDB table of hourly/daily aggregates (WATTSTREAM_AGGREGATES_TABLE), key device_id (S) + bucket (S)."
  type        = string
  default     = "wattstream-aggregates"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.aggregates_table_name))
    error_message = "aggregates_table_name must be a valid DynamoDB table name."
  }
}

variable "state_table_name" {
  description = "DynamoDB table of batch manifests (WATTSTREAM_STATE_TABLE), key shard_id (S)."
  type        = string
  default     = "wattstream-consumer-state"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.state_table_name))
    error_message = "state_table_name must be a valid DynamoDB table name."
  }
}

variable "ttl_attribute_name" {
  description = "DynamoDB TTL attribute (epoch seconds) on both tables. Only items that carry it ever expire; the consumer writes none today, so enabling it deletes nothing."
  type        = string
  default     = "expires_at"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{1,255}$", var.ttl_attribute_name))
    error_message = "ttl_attribute_name must be a valid DynamoDB attribute name."
  }
}

# --- S3 ------------------------------------------------------------------------------------

variable "raw_bucket_name" {
  description = "Name of the raw archive bucket (WATTSTREAM_RAW_BUCKET). Null: <name_prefix>-raw-<account>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.raw_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.raw_bucket_name))
    error_message = "raw_bucket_name must be a valid S3 bucket name (3-63 lowercase characters)."
  }
}

variable "s3_force_destroy" {
  description = "Let `terraform destroy` delete the raw, access-log and replica buckets with every object version in them. Keep false except to tear a stack down."
  type        = bool
  default     = false
}

variable "raw_transition_ia_days" {
  description = "Days after which raw/ and dead-letter/ objects move to STANDARD_IA (at least 30). IA bills every object as at least 128 KB, so batches smaller than that cost more there than in STANDARD."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_transition_ia_days >= 30
    error_message = "raw_transition_ia_days must be at least 30 (S3 refuses an earlier STANDARD_IA transition)."
  }
}

variable "raw_transition_glacier_ir_days" {
  description = "Days after which objects move to GLACIER_IR (at least raw_transition_ia_days + 30). Same 128 KB minimum billable size, 90-day minimum storage duration."
  type        = number
  default     = 90
}

variable "raw_transition_deep_archive_days" {
  description = "Days after which objects move to DEEP_ARCHIVE (at least raw_transition_glacier_ir_days + 90). Restores take up to 12-48 h; 180-day minimum storage duration; 40 KB of overhead billed per object."
  type        = number
  default     = 365
}

variable "raw_expiration_days" {
  description = "Days after which raw objects are deleted; 0 keeps them forever."
  type        = number
  default     = 0

  validation {
    condition     = var.raw_expiration_days >= 0
    error_message = "raw_expiration_days must be 0 (never) or a positive number of days."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten/deleted object versions are removed from the versioned buckets."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 1
    error_message = "access_log_retention_days must be at least 1."
  }
}

variable "enable_replication" {
  description = "Replicate raw/ and dead-letter/ to a versioned, KMS-encrypted bucket in replica_region (doubles storage, adds per-GB inter-region transfer)."
  type        = bool
  default     = false
}

variable "replica_region" {
  description = "Region of the replica bucket (used only when enable_replication)."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.replica_region))
    error_message = "replica_region must be an AWS region name such as eu-central-1."
  }
}

variable "replica_storage_class" {
  description = "Storage class of replicated objects."
  type        = string
  default     = "STANDARD_IA"

  validation {
    condition     = contains(["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"], var.replica_storage_class)
    error_message = "replica_storage_class must be an S3 storage class valid for replication."
  }
}

# --- ECS / consumer ------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the consumer tasks."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Subnets of the consumer tasks: private subnets with a NAT gateway or VPC endpoints (ECR api+dkr, S3, logs, Kinesis, DynamoDB, monitoring, SSM), or public subnets with assign_public_ip."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must hold at least one subnet id (subnet-...)."
  }
}

variable "assign_public_ip" {
  description = "Give each task a public IP (only for public subnets without NAT; the security group still allows no inbound traffic)."
  type        = bool
  default     = false
}

variable "image_tag" {
  description = "Tag of the consumer image in the stack's ECR repository. Tags are immutable: push a new tag per build."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid Docker tag other than \"latest\" (the repository's tags are immutable)."
  }
}

variable "container_command" {
  description = "Command of the consumer container."
  type        = list(string)
  default     = ["wattstream", "consume"]
}

variable "container_user" {
  description = "uid[:gid] the consumer runs as (non-root). The image must own /var/lib/wattstream for it (see docs/deploy.md)."
  type        = string
  default     = "10001:10001"

  validation {
    condition     = can(regex("^[1-9][0-9]*(:[0-9]+)?$", var.container_user))
    error_message = "container_user must be a numeric non-root uid, optionally :gid (0 is root)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64 (Graviton, about 20% cheaper per vCPU-hour)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (1024 = 1 vCPU); billed per vCPU-second. The JVM daemon plus one Python processor per leased shard."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB; must be a valid pairing with task_cpu (e.g. 1024 CPU: 2048-8192). Billed per GB-second."
  type        = number
  default     = 2048

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 122880 && var.task_memory % 512 == 0
    error_message = "task_memory must be a multiple of 512 MiB between 512 and 122880."
  }
}

variable "min_tasks" {
  description = "Fewest consumer tasks (and the service's initial desired count)."
  type        = number
  default     = 1

  validation {
    condition     = var.min_tasks >= 1
    error_message = "min_tasks must be at least 1: the consumer is a long-running service."
  }
}

variable "stop_timeout_s" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate maximum 120). Must exceed shutdown_grace_ms so the last batch is flushed and checkpointed."
  type        = number
  default     = 120

  validation {
    condition     = var.stop_timeout_s >= 2 && var.stop_timeout_s <= 120
    error_message = "stop_timeout_s must be between 2 and 120 (the Fargate maximum)."
  }
}

variable "shutdown_grace_ms" {
  description = "WATTSTREAM_SHUTDOWN_GRACE_MS: time SIGTERM leaves the record processors to flush. Must be below stop_timeout_s * 1000."
  type        = number
  default     = 90000

  validation {
    condition     = var.shutdown_grace_ms >= 1000
    error_message = "shutdown_grace_ms must be at least 1000."
  }
}

variable "max_records" {
  description = "WATTSTREAM_MAX_RECORDS: flush a shard's batch at this many records."
  type        = number
  default     = 10000

  validation {
    condition     = var.max_records >= 1
    error_message = "max_records must be at least 1."
  }
}

variable "max_age_s" {
  description = "WATTSTREAM_MAX_AGE_S: flush a batch this many seconds after its first record. Lower means fresher aggregates, more DynamoDB writes and smaller S3 objects."
  type        = number
  default     = 30

  validation {
    condition     = var.max_age_s > 0
    error_message = "max_age_s must be positive."
  }
}

variable "max_bytes" {
  description = "WATTSTREAM_MAX_BYTES: flush when a batch's payloads reach this size."
  type        = number
  default     = 8388608

  validation {
    condition     = var.max_bytes >= 1
    error_message = "max_bytes must be at least 1."
  }
}

variable "initial_position" {
  description = "Where a new KCL application starts reading: TRIM_HORIZON (everything retained) or LATEST."
  type        = string
  default     = "TRIM_HORIZON"

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.initial_position)
    error_message = "initial_position must be TRIM_HORIZON or LATEST."
  }
}

variable "kcl_metrics_level" {
  description = "KCL's own CloudWatch metrics (namespace = application_name): NONE, SUMMARY or DETAILED. Each metric costs per month."
  type        = string
  default     = "SUMMARY"

  validation {
    condition     = contains(["NONE", "SUMMARY", "DETAILED"], var.kcl_metrics_level)
    error_message = "kcl_metrics_level must be NONE, SUMMARY or DETAILED."
  }
}

variable "log_level" {
  description = "WATTSTREAM_LOG_LEVEL of the consumer's structured JSON logs."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "metrics_port" {
  description = "WATTSTREAM_METRICS_PORT: the consumer's Prometheus /metrics port, scraped over localhost by the ADOT sidecar (never exposed outside the task)."
  type        = number
  default     = 9108

  validation {
    condition     = var.metrics_port >= 1024 && var.metrics_port <= 65535
    error_message = "metrics_port must be an unprivileged port (1024-65535): the container runs as non-root."
  }
}

variable "container_insights" {
  description = "ECS Container Insights on the cluster: \"enhanced\", \"enabled\" or \"disabled\" (each adds custom-metric and log charges)."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enhanced", "enabled", "disabled"], var.container_insights)
    error_message = "container_insights must be enhanced, enabled or disabled."
  }
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository even when it still holds images."
  type        = bool
  default     = false
}

variable "ecr_keep_images" {
  description = "How many images the ECR lifecycle policy keeps."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1
    error_message = "ecr_keep_images must be at least 1."
  }
}

# --- Scaling -------------------------------------------------------------------------------

variable "scale_out_iterator_age_ms" {
  description = "Add a consumer task when the stream's GetRecords.IteratorAgeMilliseconds (Maximum) stays above this for 3 minutes."
  type        = number
  default     = 60000

  validation {
    condition     = var.scale_out_iterator_age_ms > 0
    error_message = "scale_out_iterator_age_ms must be positive."
  }
}

variable "scale_in_iterator_age_ms" {
  description = "Remove a consumer task when the iterator age stays below this for 15 minutes. Keep it well below max_age_s * 1000 plus a poll interval, or the service flaps."
  type        = number
  default     = 5000

  validation {
    condition     = var.scale_in_iterator_age_ms > 0
    error_message = "scale_in_iterator_age_ms must be positive."
  }
}

# --- Observability -------------------------------------------------------------------------

variable "enable_adot_sidecar" {
  description = "Run an AWS Distro for OpenTelemetry collector beside the consumer: it scrapes /metrics and writes them to CloudWatch as EMF (custom metrics are billed per metric per month)."
  type        = bool
  default     = true
}

variable "adot_image" {
  description = "ADOT collector image; pin a version (or digest) you have tested."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the consumer's Prometheus metrics (via EMF)."
  type        = string
  default     = "Wattstream"

  validation {
    condition     = can(regex("^[A-Za-z0-9_./#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a valid custom namespace (not AWS/...)."
  }
}

variable "scrape_interval_s" {
  description = "How often the sidecar scrapes /metrics (seconds)."
  type        = number
  default     = 60

  validation {
    condition     = var.scrape_interval_s >= 10 && var.scrape_interval_s <= 300
    error_message = "scrape_interval_s must be between 10 and 300."
  }
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group of the stack (consumer, sidecar, EMF metrics, ECS Exec, IoT rule errors)."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "alarm_emails" {
  description = "Email addresses subscribed to the alarm topic (each must confirm the subscription email)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must be email addresses."
  }
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when the stream's iterator age (Maximum) stays above this for 15 minutes: the consumer is falling behind and data nears the retention limit."
  type        = number
  default     = 300000

  validation {
    condition     = var.iterator_age_alarm_ms > 0
    error_message = "iterator_age_alarm_ms must be positive."
  }
}

# --- Analytics -----------------------------------------------------------------------------

variable "glue_database_name" {
  description = "Glue catalog database of the raw archive table."
  type        = string
  default     = "wattstream"

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.glue_database_name))
    error_message = "glue_database_name must be lowercase letters, digits and '_' (Athena-friendly)."
  }
}

variable "athena_results_expiration_days" {
  description = "Days Athena query results are kept (athena-results/ in the raw bucket)."
  type        = number
  default     = 30

  validation {
    condition     = var.athena_results_expiration_days >= 1
    error_message = "athena_results_expiration_days must be at least 1."
  }
}

variable "athena_bytes_scanned_cutoff" {
  description = "Per-query scan limit of the Athena workgroup in bytes (Athena bills per TB scanned); minimum 10 MB."
  type        = number
  default     = 107374182400

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MB)."
  }
}

variable "enable_quicksight" {
  description = "Create a QuickSight data source over the Athena workgroup (the QuickSight account must already exist; QuickSight has no DynamoDB connector, so dashboards read the S3 archive through Athena)."
  type        = bool
  default     = false
}

variable "quicksight_principal_arn" {
  description = "QuickSight user or group ARN granted use of the data source and the readings dataset (when enable_quicksight)."
  type        = string
  default     = null
}

variable "quicksight_dataset_days" {
  description = "Days of raw readings the QuickSight readings dataset covers (when enable_quicksight): each visual's Athena query scans that many days of the archive."
  type        = number
  default     = 35

  validation {
    condition     = var.quicksight_dataset_days >= 1 && var.quicksight_dataset_days <= 3660 && floor(var.quicksight_dataset_days) == var.quicksight_dataset_days
    error_message = "quicksight_dataset_days must be a whole number of days from 1 to 3660."
  }
}
