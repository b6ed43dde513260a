output "security_group_id" {
  description = "Security group of the control-plane hosts."
  value       = aws_security_group.control_plane.id
}

output "autoscaling_group" {
  description = "Name of the control plane's auto-scaling group."
  value       = aws_autoscaling_group.control_plane.name
}
