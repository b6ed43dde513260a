# Identities, each with only what the code calls:
# - control plane (the Spin components): the table and its indexes; sts:AssumeRole of the
#   push-access role (object-storage/push-access mints STS credentials scoped to {bucket}/{orgId}/*);
#   the volume objects the lifecycle sweep provisions and empties (`volumes/*` of the data bucket).
#   The components sign with static keys (Spin variables aws_access_key_id/_secret_access_key;
#   a WASI component has no instance metadata), hence an IAM user in a group.
# - push-access role: what the SDK's scoped credentials may do at most (the session policy of each
#   AssumeRole narrows it to one organization's prefix).
# - runner agent: volumes (rclone) and build contexts of the data bucket; static keys again
#   (the agent hands AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to rclone).
# - host roles (instance profiles): read their own secrets, pull from ECR, and for runner hosts
#   the internal registry's bucket.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  indexes   = "${var.table_arn}/index/*"
}

# --- control plane (Spin components) ---------------------------------------------------------

resource "aws_iam_group" "control_plane" {
  name = "${var.name}-control-plane"
}

resource "aws_iam_user" "control_plane" {
  #checkov:skip=CKV_AWS_273:Spin components sign with static keys from Spin variables; no SSO or instance role reaches a WASI component
  name = "${var.name}-control-plane"
  tags = var.tags
}

resource "aws_iam_user_group_membership" "control_plane" {
  user   = aws_iam_user.control_plane.name
  groups = [aws_iam_group.control_plane.name]
}

data "aws_iam_policy_document" "control_plane" {
  statement {
    sid = "Table"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [var.table_arn, local.indexes]
  }
  statement {
    sid       = "MintPushAccess"
    actions   = ["sts:AssumeRole", "sts:TagSession"]
    resources = [aws_iam_role.push_access.arn]
  }
  statement {
    sid       = "VolumeObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"]
    resources = ["${var.data_bucket_arn}/volumes/*"]
  }
  statement {
    sid       = "VolumeListing"
    actions   = ["s3:ListBucket"]
    resources = [var.data_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["volumes/*"]
    }
  }
  statement {
    sid       = "TableKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_group_policy" "control_plane" {
  name   = "table-and-push-access"
  group  = aws_iam_group.control_plane.name
  policy = data.aws_iam_policy_document.control_plane.json
}

resource "aws_iam_access_key" "control_plane" {
  user = aws_iam_user.control_plane.name
}

# --- push-access role (object_storage_sts_role_arn) ------------------------------------------

data "aws_iam_policy_document" "push_access_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_user.control_plane.arn]
    }
  }
}

resource "aws_iam_role" "push_access" {
  name                 = "${var.name}-push-access"
  assume_role_policy   = data.aws_iam_policy_document.push_access_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "push_access" {
  # The SDK uploads build contexts to {orgId}/{hash}/context.tar; each AssumeRole adds a session
  # policy on {bucket}/{orgId}/* only. Never `volumes/`.
  statement {
    sid       = "BuildContexts"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${var.data_bucket_arn}/*"]
  }
  statement {
    sid       = "NeverVolumes"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["${var.data_bucket_arn}/volumes/*"]
  }
  statement {
    sid       = "ListOwnPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.data_bucket_arn]
  }
  statement {
    sid       = "BucketKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "push_access" {
  name   = "build-contexts"
  role   = aws_iam_role.push_access.id
  policy = data.aws_iam_policy_document.push_access.json
}

# --- runner agent ----------------------------------------------------------------------------

resource "aws_iam_group" "runners" {
  name = "${var.name}-runners"
}

resource "aws_iam_user" "runners" {
  #checkov:skip=CKV_AWS_273:the runner agent reads S3 credentials from its environment only (AWS_ACCESS_KEY_ID, handed to rclone)
  name = "${var.name}-runners"
  tags = var.tags
}

resource "aws_iam_user_group_membership" "runners" {
  user   = aws_iam_user.runners.name
  groups = [aws_iam_group.runners.name]
}

data "aws_iam_policy_document" "runners" {
  statement {
    # PutObjectTagging: a fetched build context is tagged `cove-kind=build-context` (expiry rule).
    sid       = "VolumesAndContexts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${var.data_bucket_arn}/*"]
  }
  statement {
    sid       = "List"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [var.data_bucket_arn]
  }
  statement {
    sid       = "BucketKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_group_policy" "runners" {
  name   = "volumes-and-contexts"
  group  = aws_iam_group.runners.name
  policy = data.aws_iam_policy_document.runners.json
}

resource "aws_iam_access_key" "runners" {
  user = aws_iam_user.runners.name
}

# --- host roles ------------------------------------------------------------------------------

data "aws_iam_policy_document" "ec2_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "host" {
  for_each           = toset(["control-plane", "runner"])
  name               = "${var.name}-${each.value}-host"
  assume_role_policy = data.aws_iam_policy_document.ec2_trust.json
  tags               = var.tags
}

resource "aws_iam_instance_profile" "host" {
  for_each = aws_iam_role.host
  name     = each.value.name
  role     = each.value.name
}

data "aws_iam_policy_document" "control_plane_host" {
  statement {
    sid       = "OwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.control_plane_secret_arn]
  }
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }
  statement {
    sid       = "PullApp"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = var.ecr_repository_arns
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject"]
    resources = ["${var.artifacts_bucket_arn}/*"]
  }
  statement {
    sid       = "Decrypt"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "runner_host" {
  statement {
    sid       = "OwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.runner_secret_arn]
  }
  statement {
    sid       = "EnrollmentKey"
    actions   = ["ssm:GetParameter"]
    resources = [var.enrollment_parameter_arn]
  }
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }
  statement {
    sid       = "PullPushEcr"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
    resources = var.ecr_repository_arns
  }
  statement {
    sid       = "InternalRegistryStorage"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${var.registry_bucket_arn}/*"]
  }
  statement {
    sid       = "InternalRegistryList"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [var.registry_bucket_arn]
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject"]
    resources = ["${var.artifacts_bucket_arn}/*"]
  }
  statement {
    sid       = "Keys"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "control_plane_host" {
  name   = "host"
  role   = aws_iam_role.host["control-plane"].id
  policy = data.aws_iam_policy_document.control_plane_host.json
}

resource "aws_iam_role_policy" "runner_host" {
  name   = "host"
  role   = aws_iam_role.host["runner"].id
  policy = data.aws_iam_policy_document.runner_host.json
}
