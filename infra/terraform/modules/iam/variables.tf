variable "name" {
  description = "Prefix of every IAM name."
  type        = string
}

variable "table_arn" {
  description = "ARN of the Cove table."
  type        = string
}

variable "data_bucket_arn" {
  description = "ARN of the bucket of volumes and build contexts."
  type        = string
}

variable "registry_bucket_arn" {
  description = "ARN of the internal registry's bucket."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the bucket holding the release binaries hosts download (cove-runner, cove-toolbox, cove-proxy, spin)."
  type        = string
}

variable "kms_key_arn" {
  description = "The platform's KMS key."
  type        = string
}

variable "ecr_repository_arns" {
  description = "ECR repositories hosts pull from."
  type        = list(string)
}

variable "control_plane_secret_arn" {
  description = "Secrets Manager secret of the control plane's Spin variables."
  type        = string
}

variable "runner_secret_arn" {
  description = "Secrets Manager secret of the runner hosts."
  type        = string
}

variable "enrollment_parameter_arn" {
  description = "SSM parameter holding the runner enrollment key."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
