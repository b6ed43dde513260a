output "DAYTONA_API_URL" {
  description = "What the official SDKs take as DAYTONA_API_URL."
  value       = "${local.api_url}/api"
}

output "proxy_domain" {
  description = "Preview domain: previews at https://{port}-{sandboxId}.<proxy_domain>."
  value       = var.proxy_domain
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer the records point to."
  value       = module.edge.dns_name
}

output "table_name" {
  description = "The DynamoDB table."
  value       = module.table.name
}

output "data_bucket" {
  description = "Bucket of volumes and build contexts."
  value       = module.storage.data_bucket
}

output "app_repository" {
  description = "ECR repository to `spin registry push` the app to."
  value       = module.registry.repository_urls["app"]
}

output "runner_autoscaling_group" {
  description = "Auto-scaling group of the runner hosts."
  value       = module.runners.autoscaling_group
}

output "enrollment_parameter" {
  description = "SSM parameter to put the runner enrollment key in (docs/deploy.md)."
  value       = module.secrets.enrollment_parameter_name
}

output "control_plane_secret" {
  description = "Secrets Manager secret of the control plane's secret Spin variables."
  value       = module.secrets.secret_ids["control-plane"]
}
