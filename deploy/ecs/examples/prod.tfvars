# Production: on-demand stream with 7 days of replay, private subnets, Basic Ingest,
# cross-region replica, alarms to the on-call list.
region      = "eu-west-1"
name_prefix = "wattstream"

vpc_id     = "vpc-0123456789abcdef0"
subnet_ids = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb", "subnet-0cccccccccccccccc"]

image_tag = "2026.11.27-1"

stream_mode            = "ON_DEMAND"
on_demand_max_tasks    = 4
stream_retention_hours = 168

enable_basic_ingest = true
iot_error_action    = "s3"

task_cpu         = 1024
task_memory      = 2048
min_tasks        = 2
cpu_architecture = "ARM64"

max_records       = 10000
max_age_s         = 60
shutdown_grace_ms = 90000
stop_timeout_s    = 120

enable_replication    = true
replica_region        = "eu-central-1"
replica_storage_class = "GLACIER_IR"

raw_transition_ia_days           = 30
raw_transition_glacier_ir_days   = 90
raw_transition_deep_archive_days = 365

log_retention_days = 365
alarm_emails       = ["oncall@example.com", "energy-team@example.com"]

enable_quicksight        = true
quicksight_principal_arn = "arn:aws:quicksight:eu-west-1:123456789012:group/default/energy-analysts"
