# The platform's secrets. Generated values (service tokens, signing secrets, the internal
# registry's password) live in Terraform state: keep the state encrypted (an S3 backend with
# KMS, see examples/). Their versions are written by the root module, which knows the IAM keys.

resource "aws_kms_key" "this" {
  description             = "${var.name}: table, buckets, secrets, repositories, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:a key policy's Resource "*" is this key only; the account statement is AWS's default key policy
  #checkov:skip=CKV_AWS_356:a key policy's Resource "*" is this key only
  #checkov:skip=CKV_AWS_109:the account-root statement is AWS's default key policy (IAM policies then grant use)
  # A key policy's resource is the key itself ("*" means this key).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "random_password" "this" {
  for_each = toset(["proxy_api_key", "scoped_credentials_secret", "lifecycle_sweep_token", "internal_registry_password"])
  length   = 48
  special  = false
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:rotation is an operator procedure (docs/deploy.md "Rotate"): the values are Spin variables read at start, no Lambda can roll them
  for_each                = toset(["control-plane", "runner"])
  name                    = "${var.name}/${each.value}"
  description             = "Cove ${each.value}: environment of its hosts (JSON object)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

# The runner enrollment key: a Cove API key of the admin with only write:runners and
# delete:runners, created after the first deploy (docs/deploy.md) and put here by the operator.
resource "aws_ssm_parameter" "enrollment" {
  name        = "/${var.name}/runner-enrollment-key"
  description = "Cove API key (write:runners, delete:runners) runner hosts register with"
  type        = "SecureString"
  key_id      = aws_kms_key.this.arn
  value       = "unset"
  lifecycle {
    ignore_changes = [value]
  }
  tags = var.tags
}
