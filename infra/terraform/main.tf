# Cove on AWS: the DynamoDB table, S3, ECR, IAM, the control plane (Spin app under `spin up`),
# the runner fleet (cove-runner + cove-proxy + internal registry per host), the load balancer with
# its wildcard certificate and DNS, and the lifecycle scheduler. See docs/deploy.md.

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = merge({ "cove:deployment" = var.name }, var.tags)
  }
}

locals {
  # The ports every part agrees on (tests/infra/test_contracts.py checks them against the code's
  # defaults and infra/kubernetes).
  ports = {
    control_plane = 3000
    agent         = 3003
    proxy         = 4000
    registry      = 5000
  }
  api_url       = "https://${var.api_domain}"
  artifacts_url = "s3://${var.artifacts_bucket}/${var.artifacts_prefix}"

  # Every Spin variable of spin.toml but the test-only lifecycle_minute_secs and the local-only
  # jwt_hs256_secret: non-secret values here, secret ones in Secrets Manager (spin_secrets).
  spin_variables = {
    dynamodb_endpoint              = "https://dynamodb.${var.aws_region}.amazonaws.com"
    dynamodb_table                 = module.table.name
    aws_region                     = var.aws_region
    jwt_rs256_public_key           = ""
    jwt_jwks                       = var.jwt_jwks
    jwt_issuer                     = var.jwt_issuer
    jwt_audience                   = var.jwt_audience
    runner_hosts                   = "http://*:${local.ports.agent}"
    default_snapshot               = var.default_snapshot
    toolbox_proxy_url              = "https://${var.proxy_domain}/toolbox"
    proxy_domain                   = "https://${var.proxy_domain}"
    s3_endpoint                    = "https://s3.${var.aws_region}.amazonaws.com"
    s3_bucket                      = module.storage.data_bucket
    s3_public_endpoint             = "https://s3.${var.aws_region}.amazonaws.com"
    scoped_credentials_ttl_seconds = "3600"
    object_storage_sts_role_arn    = module.iam.push_access_role_arn
    internal_registry              = "127.0.0.1:${local.ports.registry}"
    internal_registry_username     = "cove-internal"
    max_snapshot_size_gb           = tostring(var.max_snapshot_size_gb)
    runner_lost_minutes            = tostring(var.runner_lost_minutes)
  }
  spin_secrets = {
    aws_access_key_id          = module.iam.control_plane_access_key_id
    aws_secret_access_key      = module.iam.control_plane_secret_access_key
    scoped_credentials_secret  = module.secrets.generated["scoped_credentials_secret"]
    internal_registry_password = module.secrets.generated["internal_registry_password"]
    proxy_api_key              = module.secrets.generated["proxy_api_key"]
    lifecycle_sweep_token      = module.secrets.generated["lifecycle_sweep_token"]
  }
  runner_secrets = {
    aws_access_key_id          = module.iam.runner_access_key_id
    aws_secret_access_key      = module.iam.runner_secret_access_key
    proxy_api_key              = module.secrets.generated["proxy_api_key"]
    internal_registry_password = module.secrets.generated["internal_registry_password"]
  }
}

data "aws_s3_bucket" "artifacts" {
  bucket = var.artifacts_bucket
}

module "secrets" {
  source = "./modules/secrets"
  name   = var.name
}

module "table" {
  source              = "./modules/table"
  name                = var.table_name
  kms_key_arn         = module.secrets.kms_key_arn
  deletion_protection = var.table_deletion_protection
}

module "storage" {
  source      = "./modules/storage"
  name        = var.name
  kms_key_arn = module.secrets.kms_key_arn
}

module "registry" {
  source      = "./modules/registry"
  name        = var.name
  kms_key_arn = module.secrets.kms_key_arn
}

module "iam" {
  source                   = "./modules/iam"
  name                     = var.name
  table_arn                = module.table.arn
  data_bucket_arn          = module.storage.data_bucket_arn
  registry_bucket_arn      = module.storage.registry_bucket_arn
  artifacts_bucket_arn     = data.aws_s3_bucket.artifacts.arn
  kms_key_arn              = module.secrets.kms_key_arn
  ecr_repository_arns      = module.registry.repository_arns
  control_plane_secret_arn = module.secrets.secret_arns["control-plane"]
  runner_secret_arn        = module.secrets.secret_arns["runner"]
  enrollment_parameter_arn = module.secrets.enrollment_parameter_arn
}

resource "aws_secretsmanager_secret_version" "control_plane" {
  secret_id     = module.secrets.secret_ids["control-plane"]
  secret_string = jsonencode(local.spin_secrets)
}

resource "aws_secretsmanager_secret_version" "runner" {
  secret_id     = module.secrets.secret_ids["runner"]
  secret_string = jsonencode(local.runner_secrets)
}

module "edge" {
  source             = "./modules/edge"
  name               = var.name
  vpc_id             = var.vpc_id
  vpc_cidr           = var.vpc_cidr
  public_subnet_ids  = var.public_subnet_ids
  zone_id            = var.route53_zone_id
  api_domain         = var.api_domain
  proxy_domain       = var.proxy_domain
  control_plane_port = local.ports.control_plane
  proxy_port         = local.ports.proxy
  logs_bucket        = module.storage.logs_bucket
}

module "control_plane" {
  source               = "./modules/control-plane"
  name                 = var.name
  vpc_id               = var.vpc_id
  subnet_ids           = var.private_subnet_ids
  ami_id               = var.ami_id
  instance_type        = var.control_plane_instance_type
  min_size             = var.control_plane_min
  max_size             = var.control_plane_max
  instance_profile     = module.iam.instance_profiles["control-plane"]
  kms_key_arn          = module.secrets.kms_key_arn
  lb_security_group_id = module.edge.security_group_id
  target_group_arn     = module.edge.control_plane_target_group_arn
  aws_region           = var.aws_region
  app_reference        = "${module.registry.repository_urls["app"]}:${var.app_tag}"
  spin_archive_url     = "${local.artifacts_url}/spin.tar.gz"
  secret_id            = module.secrets.secret_ids["control-plane"]
  port                 = local.ports.control_plane
  spin_variables       = local.spin_variables
}

module "runners" {
  source                          = "./modules/runners"
  name                            = var.name
  vpc_id                          = var.vpc_id
  subnet_ids                      = var.private_subnet_ids
  ami_id                          = var.ami_id
  instance_type                   = var.runner_instance_type
  disk_gb                         = var.runner_disk_gb
  min_size                        = var.runner_min
  max_size                        = var.runner_max
  desired_capacity                = var.runner_desired
  instance_profile                = module.iam.instance_profiles["runner"]
  kms_key_arn                     = module.secrets.kms_key_arn
  control_plane_security_group_id = module.control_plane.security_group_id
  lb_security_group_id            = module.edge.security_group_id
  proxy_target_group_arn          = module.edge.proxy_target_group_arn
  artifact_base_url               = local.artifacts_url
  aws_region                      = var.aws_region
  control_plane_url               = local.api_url
  runner_region_id                = var.runner_region_id
  enrollment_parameter            = module.secrets.enrollment_parameter_name
  runner_secret_id                = module.secrets.secret_ids["runner"]
  data_bucket                     = module.storage.data_bucket
  registry_bucket                 = module.storage.registry_bucket
  agent_port                      = local.ports.agent
  proxy_port                      = local.ports.proxy
  registry_port                   = local.ports.registry
  proxy_domain                    = var.proxy_domain
  agent_flags                     = concat(["--sandbox-deny", var.vpc_cidr], var.runner_agent_flags)
}

module "scheduler" {
  source            = "./modules/scheduler"
  name              = var.name
  control_plane_url = local.api_url
  sweep_token       = module.secrets.generated["lifecycle_sweep_token"]
  interval_minutes  = var.lifecycle_interval_minutes
  kms_key_arn       = module.secrets.kms_key_arn
}
