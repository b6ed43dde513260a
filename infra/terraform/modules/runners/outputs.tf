output "security_group_id" {
  description = "Security group of the runner hosts."
  value       = aws_security_group.runners.id
}

output "autoscaling_group" {
  description = "Name of the runner auto-scaling group."
  value       = aws_autoscaling_group.runners.name
}

output "user_data" {
  description = "The rendered cloud-init script."
  value       = local.user_data
  sensitive   = true
}
