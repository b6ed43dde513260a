output "kms_key_arn" {
  description = "The platform's KMS key."
  value       = aws_kms_key.this.arn
}

output "generated" {
  description = "Generated secrets by Spin variable name."
  value       = { for k, p in random_password.this : k => p.result }
  sensitive   = true
}

output "secret_arns" {
  description = "Secrets Manager secrets by host kind."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "secret_ids" {
  description = "Secrets Manager secret ids by host kind."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.id }
}

output "enrollment_parameter_name" {
  description = "SSM parameter of the runner enrollment key."
  value       = aws_ssm_parameter.enrollment.name
}

output "enrollment_parameter_arn" {
  description = "Its ARN."
  value       = aws_ssm_parameter.enrollment.arn
}
