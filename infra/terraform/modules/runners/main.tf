# The runner fleet: every host runs the agent (cove-runner, Docker runtime), the preview/toolbox
# proxy (cove-proxy, behind the load balancer; it borrows toolbox connections from the agent on
# the same host through the lending socket) and the internal registry (CNCF distribution on the
# registry bucket, 127.0.0.1 only). Installed and started by cloud-init (cloud-init.sh.tftpl).

locals {
  user_data = templatefile("${path.module}/cloud-init.sh.tftpl", {
    artifact_base_url    = var.artifact_base_url
    aws_region           = var.aws_region
    control_plane_url    = var.control_plane_url
    runner_region_id     = var.runner_region_id
    enrollment_parameter = var.enrollment_parameter
    runner_secret_id     = var.runner_secret_id
    metadata_url         = "http://169.254.169.254"
    runtime              = "docker"
    packages             = "docker.io rclone fuse3 iptables awscli apache2-utils docker-registry curl ca-certificates python3"
    registry_enabled     = "true"
    registry_port        = var.registry_port
    registry_bucket      = var.registry_bucket
    agent_port           = var.agent_port
    proxy_port           = var.proxy_port
    proxy_domain         = var.proxy_domain
    s3_bucket            = var.data_bucket
    agent_flags          = join(" ", var.agent_flags)
  })
}

resource "aws_security_group" "runners" {
  name        = "${var.name}-runners"
  description = "Cove runner hosts: agent API from the control plane and the proxies, proxy from the load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "agent_from_control_plane" {
  security_group_id            = aws_security_group.runners.id
  description                  = "runner API from the control plane"
  referenced_security_group_id = var.control_plane_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.agent_port
  to_port                      = var.agent_port
}

resource "aws_vpc_security_group_ingress_rule" "agent_from_proxies" {
  security_group_id            = aws_security_group.runners.id
  description                  = "runner API from the proxies of other runner hosts"
  referenced_security_group_id = aws_security_group.runners.id
  ip_protocol                  = "tcp"
  from_port                    = var.agent_port
  to_port                      = var.agent_port
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_lb" {
  security_group_id            = aws_security_group.runners.id
  description                  = "cove-proxy from the load balancer"
  referenced_security_group_id = var.lb_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.proxy_port
  to_port                      = var.proxy_port
}

resource "aws_vpc_security_group_egress_rule" "runners_out" {
  #checkov:skip=CKV_AWS_382:sandboxes reach the internet by design; the agent enforces each sandbox's egress policy and blocks the VPC (--sandbox-deny)
  security_group_id = aws_security_group.runners.id
  description       = "sandboxes, control plane, AWS APIs, package mirrors"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_launch_template" "runners" {
  name_prefix   = "${var.name}-runner-"
  image_id      = var.ami_id
  instance_type = var.instance_type
  user_data     = base64encode(local.user_data)
  ebs_optimized = true

  iam_instance_profile {
    name = var.instance_profile
  }

  vpc_security_group_ids = [aws_security_group.runners.id]

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # 1: containers (sandboxes) cannot reach the host's credentials; the agent also blocks 169.254.0.0/16
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.disk_gb
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
    tags          = merge(var.tags, { Name = "${var.name}-runner", "cove:role" = "runner" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "runners" {
  name                      = "${var.name}-runners"
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.desired_capacity
  vpc_zone_identifier       = var.subnet_ids
  target_group_arns         = [var.proxy_target_group_arn]
  health_check_type         = "ELB"
  health_check_grace_period = 600
  # A runner holds sandboxes: scale in only after draining (docs/deploy.md "Scale runners").
  protect_from_scale_in = true

  launch_template {
    id      = aws_launch_template.runners.id
    version = aws_launch_template.runners.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 90
      # a refresh waits for protected (sandbox-holding) hosts to be drained and unprotected
      scale_in_protected_instances = "Wait"
    }
  }

  tag {
    key                 = "cove:fleet"
    value               = var.name
    propagate_at_launch = true
  }
}
