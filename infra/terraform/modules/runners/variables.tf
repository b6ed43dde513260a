variable "name" {
  description = "Prefix of the fleet's names."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the runner hosts."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the runner hosts start in."
  type        = list(string)
}

variable "ami_id" {
  description = "Debian 12 (bookworm) AMI of the runner hosts."
  type        = string
}

variable "instance_type" {
  description = "Instance type of the runner hosts."
  type        = string
}

variable "disk_gb" {
  description = "Root volume size in GiB (images, containers, volume caches)."
  type        = number
}

variable "min_size" {
  description = "Fewest runner hosts."
  type        = number
}

variable "max_size" {
  description = "Most runner hosts."
  type        = number
}

variable "desired_capacity" {
  description = "Runner hosts to start with."
  type        = number
}

variable "instance_profile" {
  description = "Instance profile of the runner hosts."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the root volumes."
  type        = string
}

variable "control_plane_security_group_id" {
  description = "Security group of the control-plane hosts (may call the runner API)."
  type        = string
}

variable "lb_security_group_id" {
  description = "Security group of the load balancer (may call cove-proxy)."
  type        = string
}

variable "proxy_target_group_arn" {
  description = "Target group of cove-proxy."
  type        = string
}

variable "artifact_base_url" {
  description = "Where cove-runner, cove-toolbox, cove-proxy and SHA256SUMS are (s3://bucket/prefix or https://...)."
  type        = string
}

variable "aws_region" {
  description = "AWS region."
  type        = string
}

variable "control_plane_url" {
  description = "Base URL of the control plane (https://api.example.com)."
  type        = string
}

variable "runner_region_id" {
  description = "Cove region id the runners register in (POST /api/runners regionId)."
  type        = string
}

variable "enrollment_parameter" {
  description = "SSM parameter of the runner enrollment key."
  type        = string
}

variable "runner_secret_id" {
  description = "Secrets Manager secret of the runner hosts (S3 keys, proxy token, registry password)."
  type        = string
}

variable "data_bucket" {
  description = "Bucket of volumes and build contexts."
  type        = string
}

variable "registry_bucket" {
  description = "Bucket of the internal registry."
  type        = string
}

variable "agent_port" {
  description = "Port of the runner API."
  type        = number
}

variable "proxy_port" {
  description = "Port of cove-proxy."
  type        = number
}

variable "registry_port" {
  description = "Loopback port of the internal registry on every runner host."
  type        = number
}

variable "proxy_domain" {
  description = "Preview domain: hosts {port}-{sandboxId}.<proxy_domain>."
  type        = string
}

variable "agent_flags" {
  description = "More cove-runner flags (e.g. --warm-pool IMAGE=N, --sandbox-deny CIDR)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
