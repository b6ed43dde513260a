output "control_plane_access_key_id" {
  description = "Access key id of the control plane's user (Spin variable aws_access_key_id)."
  value       = aws_iam_access_key.control_plane.id
}

output "control_plane_secret_access_key" {
  description = "Its secret (Spin variable aws_secret_access_key)."
  value       = aws_iam_access_key.control_plane.secret
  sensitive   = true
}

output "runner_access_key_id" {
  description = "Access key id of the runner agents."
  value       = aws_iam_access_key.runners.id
}

output "runner_secret_access_key" {
  description = "Its secret."
  value       = aws_iam_access_key.runners.secret
  sensitive   = true
}

output "push_access_role_arn" {
  description = "The role object-storage/push-access assumes (Spin variable object_storage_sts_role_arn)."
  value       = aws_iam_role.push_access.arn
}

output "instance_profiles" {
  description = "Instance profile names by host kind (control-plane, runner)."
  value       = { for k, p in aws_iam_instance_profile.host : k => p.name }
}
