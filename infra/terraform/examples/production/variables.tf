variable "name" {
  description = "Name of the deployment."
  type        = string
}

variable "aws_region" {
  description = "AWS region."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the hosts."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer."
  type        = list(string)
}

variable "route53_zone_id" {
  description = "Hosted zone of the domains."
  type        = string
}

variable "api_domain" {
  description = "Host of the API."
  type        = string
}

variable "proxy_domain" {
  description = "Preview domain."
  type        = string
}

variable "ami_id" {
  description = "Debian 12 amd64 AMI."
  type        = string
}

variable "artifacts_bucket" {
  description = "Bucket of the release artifacts."
  type        = string
}

variable "artifacts_prefix" {
  description = "Release prefix in that bucket."
  type        = string
}

variable "app_tag" {
  description = "Tag of the Spin app in ECR."
  type        = string
}

variable "runner_desired" {
  description = "Runner hosts."
  type        = number
  default     = 2
}

variable "runner_agent_flags" {
  description = "More cove-runner flags."
  type        = list(string)
  default     = []
}
