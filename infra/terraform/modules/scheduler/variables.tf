variable "name" {
  description = "Prefix of the scheduler's names."
  type        = string
}

variable "control_plane_url" {
  description = "Base URL of the control plane (https://api.example.com)."
  type        = string
}

variable "sweep_token" {
  description = "The Spin variable lifecycle_sweep_token."
  type        = string
  sensitive   = true
}

variable "interval_minutes" {
  description = "Minutes between two sweeps."
  type        = number
  default     = 1
  validation {
    condition     = var.interval_minutes >= 1 && floor(var.interval_minutes) == var.interval_minutes
    error_message = "A whole number of minutes, at least 1 (EventBridge's finest rate)."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the dead-letter queue."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
