# The control plane: the Spin application under `spin up` on an auto-scaling group behind the
# load balancer (any Spin host works instead: SpinKube, see infra/kubernetes). Components are
# stateless; scale the group freely.

locals {
  user_data = templatefile("${path.module}/control-plane.sh.tftpl", {
    aws_region       = var.aws_region
    app_reference    = var.app_reference
    spin_archive_url = var.spin_archive_url
    secret_id        = var.secret_id
    port             = var.port
    spin_environment = join("\n", [for k in sort(keys(var.spin_variables)) : "SPIN_VARIABLE_${upper(k)}=${var.spin_variables[k]}"])
  })
}

resource "aws_security_group" "control_plane" {
  name        = "${var.name}-control-plane"
  description = "Cove control-plane hosts: the Spin app from the load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "from_lb" {
  security_group_id            = aws_security_group.control_plane.id
  description                  = "spin up from the load balancer"
  referenced_security_group_id = var.lb_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

resource "aws_vpc_security_group_egress_rule" "out" {
  #checkov:skip=CKV_AWS_382:components call DynamoDB, STS and S3 public endpoints and runners on their port; AWS endpoints have no fixed CIDR
  security_group_id = aws_security_group.control_plane.id
  description       = "DynamoDB, STS, S3, runner agents"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_launch_template" "control_plane" {
  name_prefix   = "${var.name}-control-plane-"
  image_id      = var.ami_id
  instance_type = var.instance_type
  user_data     = base64encode(local.user_data)
  ebs_optimized = true

  iam_instance_profile {
    name = var.instance_profile
  }

  vpc_security_group_ids = [aws_security_group.control_plane.id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 16
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-control-plane", "cove:role" = "control-plane" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "control_plane" {
  name                      = "${var.name}-control-plane"
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.min_size
  vpc_zone_identifier       = var.subnet_ids
  target_group_arns         = [var.target_group_arn]
  health_check_type         = "ELB"
  health_check_grace_period = 300

  launch_template {
    id      = aws_launch_template.control_plane.id
    version = aws_launch_template.control_plane.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  tag {
    key                 = "cove:fleet"
    value               = var.name
    propagate_at_launch = true
  }
}
