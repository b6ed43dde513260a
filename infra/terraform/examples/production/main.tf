# An example root: Cove in one AWS account, state in an encrypted S3 backend.
#   cp terraform.tfvars.example terraform.tfvars   # and edit
#   terraform init && terraform apply

terraform {
  required_version = ">= 1.6"
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "cove/production.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

module "cove" {
  source = "../.."

  name               = var.name
  aws_region         = var.aws_region
  vpc_id             = var.vpc_id
  vpc_cidr           = var.vpc_cidr
  private_subnet_ids = var.private_subnet_ids
  public_subnet_ids  = var.public_subnet_ids
  route53_zone_id    = var.route53_zone_id
  api_domain         = var.api_domain
  proxy_domain       = var.proxy_domain
  ami_id             = var.ami_id
  artifacts_bucket   = var.artifacts_bucket
  artifacts_prefix   = var.artifacts_prefix
  app_tag            = var.app_tag
  runner_desired     = var.runner_desired
  runner_agent_flags = var.runner_agent_flags
}

output "DAYTONA_API_URL" {
  description = "What the official SDKs take as DAYTONA_API_URL."
  value       = module.cove.DAYTONA_API_URL
}

output "proxy_domain" {
  description = "Preview domain."
  value       = module.cove.proxy_domain
}

output "enrollment_parameter" {
  description = "SSM parameter of the runner enrollment key."
  value       = module.cove.enrollment_parameter
}
