//! Egress policy fields of a sandbox (CONTRACT §4.2): `networkBlockAll`, `networkAllowList`
//! (comma-separated IPv4 CIDRs, at most 5), `networkDenyList` (beyond Daytona, the same form),
//! `domainAllowList`. The runner enforces the CIDR lists (`runner-agent/src/network/egress.rs`);
//! domain lists are not enforced by the runner yet, so a non-empty one is refused rather than
//! stored and silently left open.

use cove_api_types::ApiError;

/// Most entries of a CIDR list (Daytona's limit for `networkAllowList`).
pub const MAX_CIDRS: usize = 5;

/// The validated policy fields of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub block_all: bool,
    /// Normalised (`a.b.c.d/n`, comma-separated), `None` when empty.
    pub allow_list: Option<String>,
    pub deny_list: Option<String>,
}

/// The request's policy fields as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkFields<'a> {
    pub block_all: Option<bool>,
    pub allow_list: Option<&'a str>,
    pub deny_list: Option<&'a str>,
    pub domain_allow_list: Option<&'a str>,
    pub domain_deny_list: Option<&'a str>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// One CIDR list normalised; 400 for more than [`MAX_CIDRS`] entries or an invalid one.
pub fn cidr_list(field: &str, list: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(list) = list else { return Ok(None) };
    let items: Vec<&str> = entries(list).collect();
    if items.len() > MAX_CIDRS {
        return Err(bad(format!("{field} may hold at most {MAX_CIDRS} CIDRs")));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let net = item
            .parse::<ipnet::Ipv4Net>()
            .or_else(|_| item.parse::<std::net::Ipv4Addr>().map(ipnet::Ipv4Net::from))
            .map_err(|_| bad(format!("{field}: invalid IPv4 CIDR {item:?}")))?;
        out.push(net.trunc().to_string());
    }
    Ok((!out.is_empty()).then(|| out.join(",")))
}

/// A domain pattern: `example.com` or `*.example.com` (letters, digits, `-`; labels of 1-63).
pub fn valid_domain_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok)
}

/// Validates the fields of a create or network-settings body.
pub fn validate<'a>(f: NetworkFields<'a>) -> Result<NetworkPolicy, ApiError> {
    let allow = cidr_list("networkAllowList", f.allow_list)?;
    let deny = cidr_list("networkDenyList", f.deny_list)?;
    let domains = |field: &str, list: Option<&'a str>| -> Result<Vec<&'a str>, ApiError> {
        let v: Vec<&str> = list.map(entries).into_iter().flatten().collect();
        match v.iter().find(|d| !valid_domain_pattern(d)) {
            Some(d) => Err(bad(format!("{field}: invalid domain pattern {d:?}"))),
            None => Ok(v),
        }
    };
    let mut domains_given = domains("domainAllowList", f.domain_allow_list)?;
    domains_given.extend(domains("domainDenyList", f.domain_deny_list)?);
    let domains = domains_given;
    let block_all = f.block_all.unwrap_or(false);
    if block_all && (allow.is_some() || deny.is_some() || !domains.is_empty()) {
        return Err(bad(
            "networkBlockAll cannot be combined with an allow-list or a deny-list",
        ));
    }
    if !domains.is_empty() {
        return Err(bad(
            "domain lists (domainAllowList, domainDenyList) are not enforced by this platform's runners yet; use networkAllowList or networkDenyList",
        ));
    }
    Ok(NetworkPolicy {
        block_all,
        allow_list: allow,
        deny_list: deny,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(allow: Option<&'a str>, deny: Option<&'a str>) -> NetworkFields<'a> {
        NetworkFields {
            allow_list: allow,
            deny_list: deny,
            ..Default::default()
        }
    }

    #[test]
    fn cidr_lists_are_checked_and_normalised() {
        let p = validate(fields(Some(" 10.1.2.3/24, 192.0.2.1 ,"), Some("10.1.2.9"))).expect("ok");
        assert_eq!(p.allow_list.as_deref(), Some("10.1.2.0/24,192.0.2.1/32"));
        assert_eq!(p.deny_list.as_deref(), Some("10.1.2.9/32"));
        assert_eq!(
            validate(fields(Some(" , "), None)).expect("ok").allow_list,
            None
        );
        let six = "1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,5.0.0.0/8,6.0.0.0/8";
        for (allow, deny) in [
            (Some(six), None),
            (None, Some(six)),
            (Some("10.0.0.0/33"), None),
            (Some("example.com"), None),
            (Some("fd00::/8"), None),
            (None, Some("10.0.0.1/8/2")),
        ] {
            let e = validate(fields(allow, deny)).expect_err("refused");
            assert_eq!(e.status, 400, "{allow:?} {deny:?}");
        }
    }

    #[test]
    fn block_all_contradicts_the_lists() {
        let f = NetworkFields {
            block_all: Some(true),
            allow_list: Some("10.0.0.0/8"),
            ..Default::default()
        };
        assert_eq!(validate(f).expect_err("refused").status, 400);
        let f = NetworkFields {
            block_all: Some(true),
            ..Default::default()
        };
        assert!(validate(f).expect("ok").block_all);
    }

    #[test]
    fn domain_patterns() {
        for ok in ["example.com", "*.example.com", "a-b.c0.io"] {
            assert!(valid_domain_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "*.com.",
            "exa mple.com",
            "-a.com",
            "a..com",
            "*.*.a.com",
            "com",
        ] {
            assert!(!valid_domain_pattern(bad), "{bad}");
        }
        let f = NetworkFields {
            domain_allow_list: Some("bad pattern"),
            ..Default::default()
        };
        assert!(
            validate(f)
                .expect_err("refused")
                .message
                .contains("invalid domain")
        );
    }
}
