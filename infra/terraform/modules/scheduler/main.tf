# The lifecycle scheduler: an EventBridge rule on a fixed rate calls the control plane's
# authenticated sweep route (POST /api/lifecycle/sweep, Authorization: Bearer
# <lifecycle_sweep_token>) through an API destination. The sweep is idempotent and safe to run
# concurrently with itself, so a late or doubled call does no harm. (EventBridge Scheduler has no
# HTTP target; API destinations are targets of rules.)

resource "aws_cloudwatch_event_connection" "sweep" {
  name               = "${var.name}-lifecycle"
  description        = "Bearer token of the Cove lifecycle sweep route"
  authorization_type = "API_KEY"
  auth_parameters {
    api_key {
      key   = "Authorization"
      value = "Bearer ${var.sweep_token}"
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "sweep" {
  name                             = "${var.name}-lifecycle-sweep"
  description                      = "POST /api/lifecycle/sweep"
  invocation_endpoint              = "${var.control_plane_url}/api/lifecycle/sweep"
  http_method                      = "POST"
  invocation_rate_limit_per_second = 1
  connection_arn                   = aws_cloudwatch_event_connection.sweep.arn
}

resource "aws_cloudwatch_event_rule" "sweep" {
  name                = "${var.name}-lifecycle-sweep"
  description         = "Cove lifecycle sweep"
  schedule_expression = "rate(${var.interval_minutes} ${var.interval_minutes == 1 ? "minute" : "minutes"})"
  tags                = var.tags
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "invoke" {
  name               = "${var.name}-lifecycle-sweep"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "invoke" {
  statement {
    actions   = ["events:InvokeApiDestination"]
    resources = [aws_cloudwatch_event_api_destination.sweep.arn]
  }
}

resource "aws_iam_role_policy" "invoke" {
  name   = "invoke-sweep"
  role   = aws_iam_role.invoke.id
  policy = data.aws_iam_policy_document.invoke.json
}

resource "aws_sqs_queue" "dead_letters" {
  name                      = "${var.name}-lifecycle-sweep-dlq"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 86400
  tags                      = var.tags
}

resource "aws_cloudwatch_event_target" "sweep" {
  rule     = aws_cloudwatch_event_rule.sweep.name
  arn      = aws_cloudwatch_event_api_destination.sweep.arn
  role_arn = aws_iam_role.invoke.arn
  input    = "{}"
  retry_policy {
    maximum_event_age_in_seconds = 60
    maximum_retry_attempts       = 2
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}

data "aws_iam_policy_document" "dead_letters" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.sweep.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters.json
}
