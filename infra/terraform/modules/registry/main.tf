# ECR: the Spin application as an OCI artifact (`spin registry push`, pulled by `spin up --from`
# on the control-plane hosts and by SpinKube) and Cove's own container images (cove-runner,
# cove-proxy for infra/kubernetes). Snapshot and backup images go to the internal registry
# (modules/runners: CNCF distribution on S3), not to ECR: the control plane hands runners one
# static account for it (internal_registry_username/password), which ECR's 12-hour tokens cannot
# be, and it names a repository per organization and sandbox (`cove-<orgId>/backup-<id>`).

resource "aws_ecr_repository" "this" {
  for_each             = toset(var.repositories)
  name                 = "${var.name}/${each.value}"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "untagged images go after a day"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 1
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "keep the newest releases"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
