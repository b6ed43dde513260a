# The edge: one internet-facing application load balancer with a certificate for the API host,
# the preview domain and its wildcard `*.<proxy_domain>`; the API host goes to the control plane,
# everything else (previews {port}-{sandboxId}.<proxy_domain>, <proxy_domain>/toolbox) to
# cove-proxy on the runner hosts. DNS: the API host and the wildcard record in Route 53.

resource "aws_acm_certificate" "this" {
  domain_name               = var.api_domain
  subject_alternative_names = [var.proxy_domain, "*.${var.proxy_domain}"]
  validation_method         = "DNS"
  tags                      = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for o in aws_acm_certificate.this.domain_validation_options : o.domain_name => o
  }
  zone_id         = var.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_security_group" "lb" {
  name        = "${var.name}-lb"
  description = "Cove load balancer: HTTPS from the internet"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  security_group_id = aws_security_group.lb.id
  description       = "HTTPS: the API, previews, toolbox"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "control_plane" {
  security_group_id = aws_security_group.lb.id
  description       = "to the control plane"
  ip_protocol       = "tcp"
  from_port         = var.control_plane_port
  to_port           = var.control_plane_port
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_egress_rule" "proxy" {
  security_group_id = aws_security_group.lb.id
  description       = "to cove-proxy"
  ip_protocol       = "tcp"
  from_port         = var.proxy_port
  to_port           = var.proxy_port
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_28:a WAF web ACL is the operator's choice (cost, rules); attach one with aws_wafv2_web_acl_association
  #checkov:skip=CKV2_AWS_76:no WAF here (see CKV2_AWS_28)
  name                       = "${var.name}-edge"
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.lb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  # PTY sessions and log follows are long-lived websockets
  idle_timeout = 3600

  access_logs {
    bucket  = var.logs_bucket
    prefix  = "lb"
    enabled = true
  }

  tags = var.tags
}

resource "aws_lb_target_group" "control_plane" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; targets are private hosts in the VPC behind security groups
  name     = "${var.name}-api"
  port     = var.control_plane_port
  protocol = "HTTP"
  vpc_id   = var.vpc_id
  health_check {
    path    = "/api/health"
    matcher = "200"
  }
  tags = var.tags
}

resource "aws_lb_target_group" "proxy" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; targets are private hosts in the VPC behind security groups
  name     = "${var.name}-proxy"
  port     = var.proxy_port
  protocol = "HTTP"
  vpc_id   = var.vpc_id
  health_check {
    path    = "/health"
    matcher = "200"
  }
  stickiness {
    type    = "lb_cookie"
    enabled = false
  }
  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.this.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.proxy.arn
  }
}

resource "aws_lb_listener_rule" "api" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.control_plane.arn
  }
  condition {
    host_header {
      values = [var.api_domain]
    }
  }
}

resource "aws_route53_record" "api" {
  zone_id = var.zone_id
  name    = var.api_domain
  type    = "A"
  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "proxy" {
  for_each = toset([var.proxy_domain, "*.${var.proxy_domain}"])
  zone_id  = var.zone_id
  name     = each.value
  type     = "A"
  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
