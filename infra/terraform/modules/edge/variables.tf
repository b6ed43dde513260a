variable "name" {
  description = "Prefix of the edge's names."
  type        = string
}

variable "vpc_id" {
  description = "VPC."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (the load balancer's targets)."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer."
  type        = list(string)
}

variable "zone_id" {
  description = "Route 53 hosted zone of the API host and the preview domain."
  type        = string
}

variable "api_domain" {
  description = "Host name of the API (DAYTONA_API_URL = https://<api_domain>/api)."
  type        = string
}

variable "proxy_domain" {
  description = "Preview domain (previews at {port}-{sandboxId}.<proxy_domain>)."
  type        = string
}

variable "control_plane_port" {
  description = "Port of `spin up` on the control-plane hosts."
  type        = number
}

variable "proxy_port" {
  description = "Port of cove-proxy on the runner hosts."
  type        = number
}

variable "logs_bucket" {
  description = "Bucket of the load balancer's access logs."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
