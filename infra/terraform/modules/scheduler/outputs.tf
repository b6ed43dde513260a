output "rule" {
  description = "EventBridge rule of the sweep."
  value       = aws_cloudwatch_event_rule.sweep.name
}
