# The consumer: an ECS cluster, a Fargate task (consumer + optional ADOT sidecar) and a service.

resource "aws_ecs_cluster" "this" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  # ECS Exec is off on the service; if someone turns it on, its sessions are encrypted and logged.
  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.data.arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "consumer" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 90 days); a year of logs is the operator's cost decision.
  name              = local.consumer_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

resource "aws_cloudwatch_log_group" "exec" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 90 days); a year of logs is the operator's cost decision.
  name              = local.exec_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

locals {
  consumer_environment = {
    WATTSTREAM_REGION            = var.region
    WATTSTREAM_STREAM_NAME       = aws_kinesis_stream.readings.name
    WATTSTREAM_APPLICATION_NAME  = var.application_name
    WATTSTREAM_AGGREGATES_TABLE  = aws_dynamodb_table.aggregates.name
    WATTSTREAM_STATE_TABLE       = aws_dynamodb_table.state.name
    WATTSTREAM_RAW_BUCKET        = aws_s3_bucket.raw.id
    WATTSTREAM_MAX_RECORDS       = tostring(var.max_records)
    WATTSTREAM_MAX_AGE_S         = tostring(var.max_age_s)
    WATTSTREAM_MAX_BYTES         = tostring(var.max_bytes)
    WATTSTREAM_METRICS_PORT      = tostring(var.metrics_port)
    WATTSTREAM_SHUTDOWN_GRACE_MS = tostring(var.shutdown_grace_ms)
    WATTSTREAM_INITIAL_POSITION  = var.initial_position
    WATTSTREAM_KCL_METRICS_LEVEL = var.kcl_metrics_level
    WATTSTREAM_LOG_LEVEL         = var.log_level
    # Device alert events (silent, power_high, budget, register) go to the alarm topic.
    WATTSTREAM_ALERTS_TOPIC_ARN = aws_sns_topic.alarms.arn
    # Tasks have no stable name: each claims the lowest free worker slot and runs as slot-<k>,
    # so the task ECS starts in place of a dead one takes its leases back at once.
    WATTSTREAM_WORKER_ID = "slot"
    # The root filesystem is read-only: the KCL properties file and the prometheus-client
    # multiprocess files go to the task's ephemeral "scratch" volume.
    WATTSTREAM_WORK_DIR    = local.work_dir
    WATTSTREAM_METRICS_DIR = local.metrics_dir
  }

  consumer_container = {
    name      = "consumer"
    image     = "${aws_ecr_repository.consumer.repository_url}:${var.image_tag}"
    essential = true
    command   = var.container_command
    user      = var.container_user

    readonlyRootFilesystem = true
    privileged             = false

    environment = [for k in sort(keys(local.consumer_environment)) : { name = k, value = local.consumer_environment[k] }]

    mountPoints = [
      { sourceVolume = "scratch", containerPath = local.scratch_path, readOnly = false },
      # The JVM (hsperfdata, temp files) and Python's tempfile need a writable /tmp.
      { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
    ]

    linuxParameters = {
      # A tiny init as PID 1 forwards SIGTERM to the daemon and reaps the processors.
      initProcessEnabled = true
      capabilities       = { drop = ["ALL"] }
    }

    # Python is in the image already; no curl needed.
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${var.metrics_port}/metrics', timeout=3)"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 120
    }

    # SIGTERM -> processors flush and checkpoint within shutdown_grace_ms -> SIGKILL after this.
    stopTimeout = var.stop_timeout_s

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.consumer.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "consumer"
        mode                  = "non-blocking"
        max-buffer-size       = "25m"
      }
    }
  }

  adot_container = {
    name      = "adot-collector"
    image     = var.adot_image
    essential = false # losing metrics must not stop the data path
    user      = "10001"

    readonlyRootFilesystem = true
    privileged             = false

    secrets = [{ name = "AOT_CONFIG_CONTENT", valueFrom = aws_ssm_parameter.adot_config.arn }]

    linuxParameters = {
      capabilities = { drop = ["ALL"] }
    }

    healthCheck = {
      command     = ["CMD", "/healthcheck"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.consumer.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "adot"
        mode                  = "non-blocking"
      }
    }
  }

  container_definitions = concat(
    [local.consumer_container],
    var.enable_adot_sidecar ? [local.adot_container] : [],
  )
}

resource "aws_ecs_task_definition" "consumer" {
  family                   = "${var.name_prefix}-consumer"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task_cpu)
  memory                   = tostring(var.task_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(local.container_definitions)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Task-scoped bind mounts on Fargate ephemeral storage (no host path): empty at start,
  # deleted with the task.
  volume {
    name = "scratch"
  }

  volume {
    name = "tmp"
  }

  lifecycle {
    precondition {
      condition     = var.shutdown_grace_ms < var.stop_timeout_s * 1000
      error_message = "shutdown_grace_ms must be below stop_timeout_s * 1000, or ECS kills the consumer before it has flushed."
    }
  }
}

resource "aws_security_group" "consumer" {
  name        = "${var.name_prefix}-consumer"
  description = "wattstream consumer tasks: no inbound; HTTPS out to AWS APIs"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "consumer_https" {
  security_group_id = aws_security_group.consumer.id
  description       = "HTTPS to AWS service endpoints (Kinesis, DynamoDB, S3, ECR, CloudWatch, SSM)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_ecs_service" "consumer" {
  name                               = local.service_name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.consumer.arn
  desired_count                      = var.min_tasks
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.consumer.id]
    assign_public_ip = var.assign_public_ip
  }

  lifecycle {
    # Application Auto Scaling owns the task count after creation.
    ignore_changes = [desired_count]
  }
}
