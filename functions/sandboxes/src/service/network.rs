//! Egress policy fields of a sandbox (CONTRACT §4.2): `networkBlockAll`, `networkAllowList`
//! (comma-separated IPv4 CIDRs, at most 5), `networkDenyList` (beyond Daytona, the same form),
//! `domainAllowList` and `domainDenyList` (beyond Daytona; comma-separated `example.com` or
//! `*.example.com`, at most [`MAX_DOMAINS`]). The runner enforces all of them
//! (`runner-agent/src/network/egress.rs`, the domain lists through its egress proxy,
//! `runner-agent/src/egress.rs`); a list it cannot apply leaves the sandbox in `error`.
//!
//! [`network_log`] is `GET /sandbox/{id}/network-log`: the runner's last egress decisions.
//!
//! [`update`] is `POST /sandbox/{id}/network-settings`: validated as on create, stored, and for a
//! started sandbox pushed to its runner as a new spec generation (`SandboxAction::Network`: the
//! container stays, the agent rewrites its rules); a stopped or archived sandbox gets the policy
//! with its next start or restore.

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::{Sandbox, SandboxState, UpdateSandboxNetworkSettings};
use cove_edge::runner_client::{ClientError, RunnerClient};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_runner_api::NetworkLog;
use cove_store::orgs::OrgQuota;
use cove_store::sandboxes::{QuotaCheck, SandboxAction, SandboxRecord};

use super::{Call, find, now, perform, store_err, transition_err};
use crate::rules;

/// Most entries of a CIDR list (Daytona's limit for `networkAllowList`).
pub const MAX_CIDRS: usize = 5;
/// Most entries of a domain list.
pub const MAX_DOMAINS: usize = 50;

/// The validated policy fields of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub block_all: bool,
    /// Normalised (`a.b.c.d/n`, comma-separated), `None` when empty.
    pub allow_list: Option<String>,
    pub deny_list: Option<String>,
    /// Normalised (lower case, comma-separated), `None` when empty.
    pub domain_allow_list: Option<String>,
    pub domain_deny_list: Option<String>,
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

/// One domain list normalised (lower case); 400 for an invalid pattern or too many.
pub fn domain_list(field: &str, list: Option<&str>) -> Result<Vec<String>, ApiError> {
    let v: Vec<String> = list
        .map(entries)
        .into_iter()
        .flatten()
        .map(str::to_ascii_lowercase)
        .collect();
    if v.len() > MAX_DOMAINS {
        return Err(bad(format!(
            "{field} may hold at most {MAX_DOMAINS} domain patterns"
        )));
    }
    match v.iter().find(|d| !valid_domain_pattern(d)) {
        Some(d) => Err(bad(format!("{field}: invalid domain pattern {d:?}"))),
        None => Ok(v),
    }
}

fn joined(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| v.join(","))
}

/// Validates the fields of a create or network-settings body.
pub fn validate(f: NetworkFields<'_>) -> Result<NetworkPolicy, ApiError> {
    let allow = cidr_list("networkAllowList", f.allow_list)?;
    let deny = cidr_list("networkDenyList", f.deny_list)?;
    let domain_allow = domain_list("domainAllowList", f.domain_allow_list)?;
    let domain_deny = domain_list("domainDenyList", f.domain_deny_list)?;
    let block_all = f.block_all.unwrap_or(false);
    let lists = allow.is_some() || deny.is_some();
    if block_all && (lists || !domain_allow.is_empty() || !domain_deny.is_empty()) {
        return Err(bad(
            "networkBlockAll cannot be combined with an allow-list or a deny-list",
        ));
    }
    let split = |l: &Option<String>| -> Vec<String> {
        l.as_deref()
            .map(entries)
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect()
    };
    let both = |a: &[String], b: &[String]| a.iter().find(|x| b.contains(x)).cloned();
    if let Some(x) =
        both(&split(&allow), &split(&deny)).or_else(|| both(&domain_allow, &domain_deny))
    {
        return Err(bad(format!("{x} is in both an allow-list and a deny-list")));
    }
    Ok(NetworkPolicy {
        block_all,
        allow_list: allow,
        deny_list: deny,
        domain_allow_list: joined(&domain_allow),
        domain_deny_list: joined(&domain_deny),
    })
}

/// The policy fields of `rec` after `body` (see [`UpdateSandboxNetworkSettings`]), validated.
pub fn merged(
    rec: &SandboxRecord,
    body: &UpdateSandboxNetworkSettings,
) -> Result<NetworkPolicy, ApiError> {
    let lists_given = body.network_allow_list.is_some() || body.domain_allow_list.is_some();
    let block_all = match body.network_block_all {
        Some(b) => Some(b),
        None if lists_given => Some(false),
        None => Some(rec.network_block_all),
    };
    // Block-all (either way) replaces the allow-lists not given with it; turning it on also
    // replaces the deny-list (it would contradict it).
    let reset = body.network_block_all.is_some();
    let keep = |given: &Option<String>, stored: &Option<String>, cleared: bool| match given {
        Some(v) => Some(v.clone()),
        None if cleared => None,
        None => stored.clone(),
    };
    let allow = keep(&body.network_allow_list, &rec.network_allow_list, reset);
    let domain_allow = keep(&body.domain_allow_list, &rec.domain_allow_list, reset);
    let blocking = body.network_block_all == Some(true);
    let deny = keep(&body.network_deny_list, &rec.network_deny_list, blocking);
    let domain_deny = keep(&body.domain_deny_list, &rec.domain_deny_list, blocking);
    validate(NetworkFields {
        block_all,
        allow_list: allow.as_deref(),
        deny_list: deny.as_deref(),
        domain_allow_list: domain_allow.as_deref(),
        domain_deny_list: domain_deny.as_deref(),
    })
}

/// `rec` with policy `p`; 400 when the container has no network interface and `p` needs one.
fn with_policy(rec: &SandboxRecord, p: NetworkPolicy) -> Result<SandboxRecord, ApiError> {
    let mut next = rec.clone();
    if rec.state == SandboxState::Archived {
        // Restored into a new container, made with the network the policy needs.
        next.network_none = Some(p.block_all);
    } else if rec.has_no_network() && !p.block_all {
        return Err(bad(
            "The sandbox was created with networkBlockAll and has no network interface; create a new sandbox for network access",
        ));
    } else if rec.network_none.is_none() {
        next.network_none = Some(rec.has_no_network());
    }
    next.network_block_all = p.block_all;
    next.network_allow_list = p.allow_list;
    next.network_deny_list = p.deny_list;
    next.domain_allow_list = p.domain_allow_list;
    next.domain_deny_list = p.domain_deny_list;
    next.updated_at = now();
    Ok(next)
}

/// `POST /sandbox/{id}/network-settings`.
pub async fn update(
    call: &Call<'_>,
    id_or_name: &str,
    body: &UpdateSandboxNetworkSettings,
) -> Result<Sandbox, ApiError> {
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let rec = find(call, id_or_name).await?;
    let policy = merged(&rec, body)?;
    if rec.pending || rec.transition.is_some() {
        return Err(rules::in_progress());
    }
    let next = with_policy(&rec, policy)?;
    // No usage changes: the quota is not read.
    let none = OrgQuota::default();
    let rec = if rec.state == SandboxState::Started {
        let mut begun = cove_transition::prepare(&next, SandboxAction::Network, false, &now())
            .map_err(|e| transition_err(&rec.name, e))?;
        begun.last_activity_at.clone_from(&begun.updated_at);
        perform(call, &rec, &begun, QuotaCheck::Enforce(&none)).await?
    } else {
        call.env
            .store
            .sandboxes()
            .update(&rec, &next, QuotaCheck::Record)
            .await
            .map_err(|e| store_err(&rec.name, e))?
    };
    tracing::info!(sandbox = %rec.id, block_all = rec.network_block_all, allow = ?rec.network_allow_list, deny = ?rec.network_deny_list, domains = ?rec.domain_allow_list, domains_denied = ?rec.domain_deny_list, "network settings updated");
    Ok(call.view(&rec))
}

/// `GET /sandbox/{id}/network-log`: the last egress decisions of the runner the sandbox is on
/// (empty when it is on none); another organization's sandbox is not found.
pub async fn network_log(call: &Call<'_>, id_or_name: &str) -> Result<NetworkLog, ApiError> {
    let rec = find(call, id_or_name).await?;
    let Some(runner_id) = rec.runner_id.as_ref() else {
        return Ok(NetworkLog::default());
    };
    let runner = call.env.store.runners().get(runner_id).await.api()?;
    let Some((runner, url)) = runner.and_then(|r| {
        let url = r.api_url.clone().filter(|u| !u.is_empty())?;
        Some((r, url))
    }) else {
        return Ok(NetworkLog::default());
    };
    match RunnerClient::new(url, &runner.api_key)
        .network_log(rec.id.as_str())
        .await
    {
        Ok(log) => Ok(log),
        Err(ClientError::Status { status: 404, .. }) => Ok(NetworkLog::default()),
        Err(e) => {
            tracing::warn!(sandbox = %rec.id, error = %e, "the runner did not answer with the network log");
            Err(ApiError::service_unavailable(
                "the sandbox's runner did not answer; try again",
            ))
        }
    }
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
    fn network_settings_merge_as_daytona() {
        let mut rec = SandboxRecord::new(
            cove_api_types::ids::SandboxId::new_random(),
            cove_api_types::ids::OrganizationId::new_random(),
            "n",
            "img",
            "2026-01-01T00:00:00.000Z",
        );
        rec.network_allow_list = Some("10.0.0.0/8".into());
        rec.network_deny_list = Some("10.9.0.0/16".into());
        let body = |b: Option<bool>, allow: Option<&str>| UpdateSandboxNetworkSettings {
            network_block_all: b,
            network_allow_list: allow.map(str::to_owned),
            ..Default::default()
        };
        // Block-all clears both lists; off clears the allow-list, keeps the deny-list.
        assert_eq!(
            merged(&rec, &body(Some(true), None)).expect("ok"),
            NetworkPolicy {
                block_all: true,
                ..Default::default()
            }
        );
        let off = merged(&rec, &body(Some(false), None)).expect("ok");
        assert_eq!(
            (off.allow_list, off.deny_list.as_deref()),
            (None, Some("10.9.0.0/16"))
        );
        // An allow-list alone turns block-all off and replaces the stored one.
        rec.network_block_all = true;
        let p = merged(&rec, &body(None, Some("192.0.2.1"))).expect("ok");
        assert!(!p.block_all);
        assert_eq!(p.allow_list.as_deref(), Some("192.0.2.1/32"));
        // Nothing given keeps everything; contradictions are refused.
        rec.network_block_all = false;
        let same = merged(&rec, &body(None, None)).expect("ok");
        assert_eq!(same.allow_list.as_deref(), Some("10.0.0.0/8"));
        let e = merged(&rec, &body(Some(true), Some("10.0.0.0/8"))).expect_err("refused");
        assert_eq!(e.status, 400);
        // A container made without a network cannot be given one; an archived one can.
        rec.network_block_all = true;
        let open = NetworkPolicy::default();
        assert_eq!(
            with_policy(&rec, open.clone()).expect_err("no nic").status,
            400
        );
        rec.state = SandboxState::Archived;
        let next = with_policy(&rec, open).expect("restored with a network");
        assert_eq!(
            (next.network_none, next.network_block_all),
            (Some(false), false)
        );
    }

    #[test]
    fn domain_lists_are_checked_normalised_and_not_contradictory() {
        let f = NetworkFields {
            domain_allow_list: Some(" Allowed.test, *.Wild.test ,"),
            domain_deny_list: Some("denied.test"),
            ..Default::default()
        };
        let p = validate(f).expect("ok");
        assert_eq!(
            p.domain_allow_list.as_deref(),
            Some("allowed.test,*.wild.test")
        );
        assert_eq!(p.domain_deny_list.as_deref(), Some("denied.test"));
        let many = vec!["a.test"; MAX_DOMAINS + 1].join(",");
        let both = NetworkFields {
            domain_allow_list: Some("a.test,B.test"),
            domain_deny_list: Some("b.test"),
            ..Default::default()
        };
        let cidrs = fields(Some("10.0.0.0/8"), Some("10.0.0.0/8"));
        let oversized = NetworkFields {
            domain_allow_list: Some(&many),
            ..Default::default()
        };
        let blocked = NetworkFields {
            block_all: Some(true),
            domain_deny_list: Some("b.test"),
            ..Default::default()
        };
        for f in [both, cidrs, oversized, blocked] {
            let e = validate(f).expect_err("refused");
            assert_eq!(e.status, 400, "{f:?}: {}", e.message);
        }
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
