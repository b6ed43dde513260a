variable "name" {
  description = "Prefix of the bucket names (`<name>-data`, `<name>-registry`, `<name>-logs`); bucket names are global."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,50}$", var.name))
    error_message = "Lower-case letters, digits and hyphens, at most 51 characters."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the data and registry buckets."
  type        = string
}

variable "build_context_days" {
  description = "Days after which a build context tagged cove-kind=build-context expires."
  type        = number
  default     = 7
  validation {
    condition     = var.build_context_days >= 1
    error_message = "At least one day."
  }
}

variable "noncurrent_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_days >= 1
    error_message = "At least one day."
  }
}

variable "log_days" {
  description = "Days access logs are kept."
  type        = number
  default     = 90
  validation {
    condition     = var.log_days >= 1
    error_message = "At least one day."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
