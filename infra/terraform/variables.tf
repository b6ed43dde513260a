variable "name" {
  description = "Name of this deployment: prefix of every resource (buckets: <name>-data, <name>-registry, <name>-logs)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "3-22 characters: lower-case letters, digits, hyphens; starts with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of the deployment."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "An AWS region such as us-east-1."
  }
}

variable "vpc_id" {
  description = "Existing VPC to deploy into."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "A VPC id (vpc-...)."
  }
}

variable "vpc_cidr" {
  description = "CIDR of that VPC: the load balancer's targets, and a range sandboxes may not reach (--sandbox-deny)."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "An IPv4 CIDR."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (with a NAT route) of the control-plane and runner hosts."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "At least two subnets, in different availability zones."
  }
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer."
  type        = list(string)
  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An application load balancer needs two subnets in different availability zones."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone holding api_domain and proxy_domain."
  type        = string
}

variable "api_domain" {
  description = "Host name of the API: DAYTONA_API_URL is https://<api_domain>/api."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.api_domain))
    error_message = "A lower-case DNS name without scheme."
  }
}

variable "proxy_domain" {
  description = "Preview domain: previews are https://{port}-{sandboxId}.<proxy_domain>, the toolbox https://<proxy_domain>/toolbox."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.proxy_domain))
    error_message = "A lower-case DNS name without scheme."
  }
}

variable "ami_id" {
  description = "Debian 12 (bookworm) amd64 AMI of every host."
  type        = string
  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "An AMI id (ami-...)."
  }
}

variable "artifacts_bucket" {
  description = "Existing bucket of the release artifacts hosts download: <artifacts_prefix>/{cove-runner,cove-toolbox,cove-proxy,SHA256SUMS,spin.tar.gz}."
  type        = string
}

variable "artifacts_prefix" {
  description = "Prefix (a release) of the artifacts in artifacts_bucket."
  type        = string
  default     = "releases/0.1.0"
}

variable "app_tag" {
  description = "Tag of the Spin app artifact in ECR (`spin registry push <repo>:<tag>`)."
  type        = string
  default     = "0.1.0"
}

variable "table_name" {
  description = "Name of the DynamoDB table (Spin variable dynamodb_table)."
  type        = string
  default     = "cove"
}

variable "table_deletion_protection" {
  description = "Deletion protection of the table."
  type        = bool
  default     = true
}

variable "control_plane_instance_type" {
  description = "Instance type of the control-plane hosts."
  type        = string
  default     = "t3.medium"
}

variable "control_plane_min" {
  description = "Fewest control-plane hosts."
  type        = number
  default     = 2
  validation {
    condition     = var.control_plane_min >= 1
    error_message = "At least one host."
  }
}

variable "control_plane_max" {
  description = "Most control-plane hosts."
  type        = number
  default     = 6
}

variable "runner_instance_type" {
  description = "Instance type of the runner hosts (sandboxes run there)."
  type        = string
  default     = "m6i.2xlarge"
}

variable "runner_disk_gb" {
  description = "Root volume of a runner host in GiB: images, containers, volume caches."
  type        = number
  default     = 200
  validation {
    condition     = var.runner_disk_gb >= 50
    error_message = "At least 50 GiB."
  }
}

variable "runner_min" {
  description = "Fewest runner hosts."
  type        = number
  default     = 1
  validation {
    condition     = var.runner_min >= 1
    error_message = "At least one runner."
  }
}

variable "runner_max" {
  description = "Most runner hosts."
  type        = number
  default     = 10
}

variable "runner_desired" {
  description = "Runner hosts to start with (change it to scale; see docs/deploy.md)."
  type        = number
  default     = 2
}

variable "runner_region_id" {
  description = "Cove region id the runners register in."
  type        = string
  default     = "default"
}

variable "runner_agent_flags" {
  description = "More cove-runner flags, e.g. [\"--warm-pool\", \"cove-sandbox-base:latest=4\"]."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for f in var.runner_agent_flags : !can(regex("[\"'`$\\\\;|&]", f))])
    error_message = "Flags may not hold quotes, $, backslashes or shell operators."
  }
}

variable "default_snapshot" {
  description = "Image of sandboxes created without a snapshot (Spin variable default_snapshot)."
  type        = string
  default     = "cove-sandbox-base:latest"
}

variable "jwt_jwks" {
  description = "JWKS document (JSON) verifying RS256 user JWTs; empty = API keys only."
  type        = string
  default     = ""
}

variable "jwt_issuer" {
  description = "Required JWT issuer (empty = not checked)."
  type        = string
  default     = ""
}

variable "jwt_audience" {
  description = "Required JWT audience (empty = not checked)."
  type        = string
  default     = ""
}

variable "lifecycle_interval_minutes" {
  description = "Minutes between two lifecycle sweeps (EventBridge: at least 1)."
  type        = number
  default     = 1
}

variable "runner_lost_minutes" {
  description = "Lifecycle minutes a silent runner's sandboxes wait before they are given up (Spin variable runner_lost_minutes)."
  type        = number
  default     = 30
  validation {
    condition     = var.runner_lost_minutes >= 1
    error_message = "At least one minute."
  }
}

variable "max_snapshot_size_gb" {
  description = "Largest snapshot image in GB (Spin variable max_snapshot_size_gb)."
  type        = number
  default     = 20
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
