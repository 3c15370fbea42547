# Between min_tasks and one task per shard, on the stream's GetRecords.IteratorAgeMilliseconds
# (the consumer uses polling retrieval, so this stream-level metric reflects its lag).
# Step scaling, one task at a time: the KCL rebalances leases after each change, so target
# tracking's proportional jumps would only make it flap.

resource "aws_appautoscaling_target" "consumer" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.consumer.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = max(var.min_tasks, local.max_tasks)
}

resource "aws_appautoscaling_policy" "scale_out" {
  name               = "${var.name_prefix}-consumer-scale-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.consumer.service_namespace
  resource_id        = aws_appautoscaling_target.consumer.resource_id
  scalable_dimension = aws_appautoscaling_target.consumer.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_appautoscaling_policy" "scale_in" {
  name               = "${var.name_prefix}-consumer-scale-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.consumer.service_namespace
  resource_id        = aws_appautoscaling_target.consumer.resource_id
  scalable_dimension = aws_appautoscaling_target.consumer.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 600
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "scale_out" {
  alarm_name          = "${var.name_prefix}-consumer-scale-out"
  alarm_description   = "Iterator age above ${var.scale_out_iterator_age_ms} ms for 3 minutes: add a consumer task."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.readings.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.scale_out_iterator_age_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_appautoscaling_policy.scale_out.arn]
}

resource "aws_cloudwatch_metric_alarm" "scale_in" {
  alarm_name          = "${var.name_prefix}-consumer-scale-in"
  alarm_description   = "Iterator age below ${var.scale_in_iterator_age_ms} ms for 15 minutes: remove a consumer task."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.readings.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 15
  threshold           = var.scale_in_iterator_age_ms
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_appautoscaling_policy.scale_in.arn]
}
