variable "name" {
  description = "Prefix of the control plane's names."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the control-plane hosts."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the control-plane hosts."
  type        = list(string)
}

variable "ami_id" {
  description = "Debian 12 AMI of the control-plane hosts."
  type        = string
}

variable "instance_type" {
  description = "Instance type of the control-plane hosts."
  type        = string
}

variable "min_size" {
  description = "Fewest control-plane hosts."
  type        = number
}

variable "max_size" {
  description = "Most control-plane hosts."
  type        = number
}

variable "instance_profile" {
  description = "Instance profile of the control-plane hosts."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the root volumes."
  type        = string
}

variable "lb_security_group_id" {
  description = "Security group of the load balancer."
  type        = string
}

variable "target_group_arn" {
  description = "Target group of the control plane."
  type        = string
}

variable "aws_region" {
  description = "AWS region."
  type        = string
}

variable "app_reference" {
  description = "OCI reference of the Spin app (`spin registry push` target)."
  type        = string
}

variable "spin_archive_url" {
  description = "s3:// URL of the Spin CLI release archive (spin-v*-linux-amd64.tar.gz)."
  type        = string
}

variable "secret_id" {
  description = "Secrets Manager secret with the secret Spin variables (JSON object)."
  type        = string
}

variable "port" {
  description = "Port `spin up` listens on."
  type        = number
}

variable "spin_variables" {
  description = "Non-secret Spin variables (name => value)."
  type        = map(string)
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
