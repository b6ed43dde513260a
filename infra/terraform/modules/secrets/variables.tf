variable "name" {
  description = "Prefix of the key alias, secret and parameter names."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
