# Smallest useful stack: one provisioned shard, one task, short retention, no replica.
# terraform plan -var-file=examples/dev.tfvars
region      = "eu-west-1"
name_prefix = "wattstream-dev"

vpc_id           = "vpc-0123456789abcdef0"
subnet_ids       = ["subnet-0123456789abcdef0"]
assign_public_ip = true # public subnet, no NAT gateway

image_tag = "0.1.0"

stream_mode            = "PROVISIONED"
shard_count            = 1
stream_retention_hours = 24

task_cpu    = 512
task_memory = 1024
min_tasks   = 1

deletion_protection = false
ecr_force_delete    = true
kcl_metrics_level   = "NONE"
container_insights  = "disabled"
log_retention_days  = 14

alarm_emails = ["oncall-dev@example.com"]
