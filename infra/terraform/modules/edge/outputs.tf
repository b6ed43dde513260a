output "security_group_id" {
  description = "Security group of the load balancer."
  value       = aws_security_group.lb.id
}

output "control_plane_target_group_arn" {
  description = "Target group of the control plane."
  value       = aws_lb_target_group.control_plane.arn
}

output "proxy_target_group_arn" {
  description = "Target group of cove-proxy."
  value       = aws_lb_target_group.proxy.arn
}

output "dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}
