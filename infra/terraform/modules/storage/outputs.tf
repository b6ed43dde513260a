output "data_bucket" {
  description = "Bucket of volumes and build contexts (Spin variable s3_bucket, runner --s3-bucket)."
  value       = aws_s3_bucket.this["data"].bucket
}

output "data_bucket_arn" {
  description = "ARN of the data bucket."
  value       = aws_s3_bucket.this["data"].arn
}

output "registry_bucket" {
  description = "Bucket of the internal registry's storage."
  value       = aws_s3_bucket.this["registry"].bucket
}

output "registry_bucket_arn" {
  description = "ARN of the registry bucket."
  value       = aws_s3_bucket.this["registry"].arn
}

output "logs_bucket" {
  description = "Bucket of the access logs (S3 and the load balancer)."
  value       = aws_s3_bucket.logs.bucket
}
