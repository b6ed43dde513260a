# Object storage. The code uses ONE bucket (Spin variable s3_bucket, runner flag --s3-bucket) for
# both volumes (prefix `volumes/<volumeId>/` plus marker objects `volumes/<volumeId>.volume`) and
# the SDK's build contexts (`<orgId>/<hash>/context.tar`), so both live in the `data` bucket.
# A second bucket holds the internal registry's storage (CNCF distribution, see modules/runners),
# a third the access logs of the other two.

locals {
  buckets = {
    data     = "${var.name}-data"
    registry = "${var.name}-registry"
  }
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_145:S3 server access logs and load balancer logs can only be delivered to SSE-S3 (AES256) buckets
  #checkov:skip=CKV_AWS_18:this is the access-log target; logging it into itself would loop
  #checkov:skip=CKV_AWS_144:cross-region replication is a disaster-recovery choice left to the operator
  #checkov:skip=CKV2_AWS_62:no consumer of object-created events on the log bucket
  bucket        = "${var.name}-logs"
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV2_AWS_61:both buckets have one (aws_s3_bucket_lifecycle_configuration.data and .registry); checkov does not follow for_each keys
  #checkov:skip=CKV_AWS_144:cross-region replication is a disaster-recovery choice left to the operator
  #checkov:skip=CKV2_AWS_62:no consumer of object-created events; the lifecycle sweep polls the table
  for_each      = local.buckets
  bucket        = each.value
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "all" {
  for_each                = merge(local.buckets, { logs = aws_s3_bucket.logs.bucket })
  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
  depends_on              = [aws_s3_bucket.this, aws_s3_bucket.logs]
}

resource "aws_s3_bucket_ownership_controls" "all" {
  for_each = merge(local.buckets, { logs = aws_s3_bucket.logs.bucket })
  bucket   = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
  depends_on = [aws_s3_bucket.this, aws_s3_bucket.logs]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  # S3 server access logging writes only to SSE-S3 buckets (a KMS key is not supported there).
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Versioning protects volume data and registry blobs against deletes and overwrites; noncurrent
# versions expire (below).
resource "aws_s3_bucket_versioning" "all" {
  for_each = merge(local.buckets, { logs = aws_s3_bucket.logs.bucket })
  bucket   = each.value
  versioning_configuration {
    status = "Enabled"
  }
  depends_on = [aws_s3_bucket.this, aws_s3_bucket.logs]
}

resource "aws_s3_bucket_logging" "this" {
  for_each      = aws_s3_bucket.this
  bucket        = each.value.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket     = aws_s3_bucket.this["data"].id
  depends_on = [aws_s3_bucket_versioning.all]

  # Build contexts are uploaded by the SDK at `<orgId>/<hash>/context.tar`, next to nothing else
  # but `volumes/`: every object outside `volumes/` is a build context. S3 rules cannot exclude a
  # prefix, so stale contexts are expired by tag: `cove-kind=build-context` (see docs/deploy.md,
  # "Stale build contexts"); volumes are never expired.
  rule {
    id     = "stale-build-contexts"
    status = "Enabled"
    filter {
      tag {
        key   = "cove-kind"
        value = "build-context"
      }
    }
    expiration {
      days = var.build_context_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "volumes-noncurrent"
    status = "Enabled"
    filter {
      prefix = "volumes/"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "registry" {
  bucket     = aws_s3_bucket.this["registry"].id
  depends_on = [aws_s3_bucket_versioning.all]
  rule {
    id     = "noncurrent-and-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket     = aws_s3_bucket.logs.id
  depends_on = [aws_s3_bucket_versioning.all]
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# TLS only, on every bucket.
data "aws_iam_policy_document" "tls_only" {
  for_each = merge(
    { for k, b in aws_s3_bucket.this : k => b.arn },
    { logs = aws_s3_bucket.logs.arn },
  )
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value,
      "${each.value}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "logs" ? [1] : []
    content {
      sid       = "S3ServerAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${each.value}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com", "logdelivery.elasticloadbalancing.amazonaws.com"]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "all" {
  for_each   = data.aws_iam_policy_document.tls_only
  bucket     = each.key == "logs" ? aws_s3_bucket.logs.id : aws_s3_bucket.this[each.key].id
  policy     = each.value.json
  depends_on = [aws_s3_bucket_public_access_block.all]
}
