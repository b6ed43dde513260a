variable "name" {
  description = "Table name (the Spin variable dynamodb_table)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "A DynamoDB table name has 3-255 characters of [A-Za-z0-9_.-]."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the table."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse DeleteTable until this is turned off."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
