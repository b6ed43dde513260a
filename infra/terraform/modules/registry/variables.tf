variable "name" {
  description = "Repository namespace (`<name>/<repository>`)."
  type        = string
}

variable "repositories" {
  description = "Repositories to create."
  type        = list(string)
  default     = ["app", "cove-runner", "cove-proxy"]
}

variable "keep_images" {
  description = "Tagged images kept per repository."
  type        = number
  default     = 30
  validation {
    condition     = var.keep_images >= 1
    error_message = "Keep at least one image."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the repositories."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
