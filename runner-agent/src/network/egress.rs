//! Per-sandbox egress policies (`networkAllowList`, `networkDenyList`, `networkBlockAll` turned
//! on at run time), enforced in the sandbox's traffic path by the host's firewall.
//!
//! Every sandbox with a policy gets a chain `CS-<bridge>-<8 hex>` (a hash of its id), jumped to
//! from the end of `COVE-FWD-<bridge>` by its bridge address (`-s <ip>/32`), after the isolation
//! rules (which therefore always win) and after the DNS exception. The chain lets replies of
//! connections opened towards the sandbox pass (`--ctdir REPLY`), rejects the deny-list, then,
//! with an allow-list, returns for the allowed destinations and rejects the rest; block-all
//! rejects everything. Rejections answer at once (TCP reset, ICMP admin-prohibited) so that a
//! refused connection fails in milliseconds instead of hanging. Each packet the sandbox sends is
//! judged, so a change also cuts connections already open to a destination that became denied.
//!
//! The policies live in a process-wide registry ([`set`], [`forget`]); every write of the
//! bridge's rules (`network::assert_rules`, at start, every 30 s and on each change) puts the
//! whole registry into the same `iptables-restore` transaction as the isolation chains, so the
//! periodic re-assertion repairs policy chains too and no write can leave a sandbox half-done.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{LazyLock, Mutex, OnceLock};

use bollard::Docker;
use cove_runner_api::EgressPolicy;
use ipnet::Ipv4Net;

use super::{NetworkError, NetworkSettings};
use crate::egress::pattern::{DomainList, DomainPolicy};

/// A policy in the form the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub block_all: bool,
    pub allow: Vec<Ipv4Net>,
    pub deny: Vec<Ipv4Net>,
    /// Domain lists: TCP 80/443 go through the egress proxy (`crate::egress`).
    pub domains: DomainPolicy,
}

impl Compiled {
    /// Whether TCP 80/443 are redirected to the egress proxy.
    pub fn proxied(&self) -> bool {
        !self.block_all && !self.domains.is_empty()
    }

    /// Whether the forward chain refuses what its lists do not allow (a CIDR or a domain
    /// allow-list: other ports follow the CIDR allow-list, none when it is empty).
    pub fn default_deny(&self) -> bool {
        !self.allow.is_empty() || !self.domains.allow.is_empty()
    }
}

/// One sandbox's installed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ip: Ipv4Addr,
    pub chain: String,
    pub policy: Compiled,
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("invalid egress destination {0:?} (an IPv4 CIDR or address)")]
    BadCidr(String),
    #[error("the sandbox has no address on the sandbox network")]
    NoAddress,
    #[error(
        "the agent does not install firewall rules (--external-network-isolation): it cannot enforce an egress policy"
    )]
    Unenforced,
    #[error("invalid domain pattern {0:?}")]
    BadDomain(String),
    #[error("the agent's egress proxy is not running: it cannot enforce a domain list")]
    NoProxy,
    #[error("{0}")]
    Network(#[from] NetworkError),
}

/// How the agent enforces policies: set once at start by [`install`] (Docker runtime only).
struct Enforcer {
    docker: Docker,
    settings: NetworkSettings,
}

static ENFORCER: OnceLock<Enforcer> = OnceLock::new();
static REGISTRY: LazyLock<Mutex<BTreeMap<String, Entry>>> = LazyLock::new(Mutex::default);
/// The bridge address of every running sandbox, with or without a policy (the decision log
/// attributes the isolation rules' refusals by it); an address is never held by two sandboxes.
static ADDRESSES: LazyLock<Mutex<BTreeMap<String, Ipv4Addr>>> = LazyLock::new(Mutex::default);

fn remember(id: &str, ip: Ipv4Addr) {
    let mut a = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner());
    a.retain(|other, v| other == id || *v != ip);
    a.insert(id.to_owned(), ip);
}

/// The running sandbox at bridge address `ip`, if any.
pub fn sandbox_at(ip: Ipv4Addr) -> Option<String> {
    let a = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner());
    a.iter().find(|(_, v)| **v == ip).map(|(id, _)| id.clone())
}

/// Makes the agent enforce policies on `settings`' bridge (agent start, Docker runtime).
pub fn install(docker: Docker, settings: NetworkSettings) {
    let _ = ENFORCER.set(Enforcer { docker, settings });
}

fn parse_net(s: &str) -> Result<Ipv4Net, EgressError> {
    let t = s.trim();
    t.parse::<Ipv4Net>()
        .or_else(|_| t.parse::<Ipv4Addr>().map(Ipv4Net::from))
        .map(|n| n.trunc())
        .map_err(|_| EgressError::BadCidr(s.to_owned()))
}

/// The policy's rules; `None` when it restricts nothing.
pub fn compile(p: &EgressPolicy) -> Result<Option<Compiled>, EgressError> {
    if p.is_open() {
        return Ok(None);
    }
    let parse = |v: &[String]| {
        v.iter()
            .map(|s| parse_net(s))
            .collect::<Result<Vec<_>, _>>()
    };
    let domains = |v: &[String]| match v.iter().find(|d| !valid_pattern(d)) {
        Some(d) => Err(EgressError::BadDomain(d.clone())),
        None => Ok(DomainList::new(v)),
    };
    Ok(Some(Compiled {
        block_all: p.block_all,
        allow: parse(&p.allow)?,
        deny: parse(&p.deny)?,
        domains: DomainPolicy {
            allow: domains(&p.domain_allow)?,
            deny: domains(&p.domain_deny)?,
        },
    }))
}

/// `example.com` or `*.example.com` (the control plane validates the same way).
fn valid_pattern(p: &str) -> bool {
    let name = p.trim().strip_prefix("*.").unwrap_or(p.trim());
    let label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name.contains('.') && name.trim_end_matches('.').split('.').all(label)
}

/// The sandbox whose policy is installed for address `ip`, with that policy.
pub fn by_ip(ip: Ipv4Addr) -> Option<(String, Compiled)> {
    let g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    g.iter()
        .find(|(_, e)| e.ip == ip)
        .map(|(id, e)| (id.clone(), e.policy.clone()))
}

/// The chain of sandbox `id` on `bridge` (at most 27 characters: iptables allows 28).
pub fn chain_name(bridge: &str, id: &str) -> String {
    // FNV-1a: stable across builds, so a restarted agent finds its chains under the same names.
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("CS-{bridge}-{hash:08x}")
}

/// Every installed policy, ordered by chain name.
pub fn snapshot() -> Vec<Entry> {
    let g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<Entry> = g.values().cloned().collect();
    v.sort_by(|a, b| a.chain.cmp(&b.chain));
    v
}

/// Applies `policy` to the running container `container_id` of sandbox `id` (idempotent: the
/// rules are written only when the address or the policy changed). Without an enforcer (the
/// simulated runtime) nothing happens.
pub async fn set(id: &str, container_id: &str, policy: &EgressPolicy) -> Result<(), EgressError> {
    let compiled = compile(policy)?;
    let Some(enf) = ENFORCER.get() else {
        return Ok(());
    };
    let Some(compiled) = compiled else {
        if enf.settings.firewall {
            // No policy: only the address, for the log of what the isolation refuses.
            match address(&enf.docker, container_id, &enf.settings.name).await {
                Ok(ip) => remember(id, ip),
                Err(e) => tracing::debug!(sandbox = %id, error = %e, "no bridge address to log by"),
            }
        }
        return drop_policy(id).await;
    };
    if !enf.settings.firewall {
        return Err(EgressError::Unenforced);
    }
    if compiled.proxied() && crate::egress::proxy::port().is_none() {
        return Err(EgressError::NoProxy);
    }
    let ip = address(&enf.docker, container_id, &enf.settings.name).await?;
    remember(id, ip);
    let entry = Entry {
        ip,
        chain: chain_name(&enf.settings.bridge, id),
        policy: compiled,
    };
    {
        let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        if g.get(id) == Some(&entry) {
            return Ok(());
        }
        // An address freed by a stopped sandbox may have been given to this one.
        g.retain(|other, e| other == id || e.ip != ip);
        g.insert(id.to_owned(), entry);
    }
    write(enf).await?;
    tracing::info!(sandbox = %id, %ip, ?policy, "egress policy applied");
    Ok(())
}

/// Removes the policy, the address and the decision log of sandbox `id` (stopped or destroyed:
/// its address may go to another one).
pub async fn forget(id: &str) -> Result<(), EgressError> {
    ADDRESSES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
    crate::egress::log::LOG.forget(id);
    drop_policy(id).await
}

/// Removes the policy of sandbox `id` (its rules), keeping its address and log.
async fn drop_policy(id: &str) -> Result<(), EgressError> {
    let removed = REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
        .is_some();
    match ENFORCER.get() {
        Some(enf) if removed && enf.settings.firewall => write(enf).await,
        _ => Ok(()),
    }
}

async fn write(enf: &Enforcer) -> Result<(), EgressError> {
    super::write_rules(&enf.docker, &enf.settings).await?;
    Ok(())
}

/// The container's address on the sandbox network.
async fn address(
    docker: &Docker,
    container_id: &str,
    network: &str,
) -> Result<Ipv4Addr, EgressError> {
    let c = docker
        .inspect_container(container_id, None)
        .await
        .map_err(|e| NetworkError::Engine {
            op: "inspect a sandbox's address",
            message: e.to_string(),
        })?;
    c.network_settings
        .and_then(|n| n.networks)
        .and_then(|mut m| m.remove(network))
        .and_then(|e| e.ip_address)
        .and_then(|ip| ip.parse().ok())
        .ok_or(EgressError::NoAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> EgressPolicy {
        EgressPolicy {
            block_all: false,
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            deny: deny.iter().map(|s| (*s).to_owned()).collect(),
            ..EgressPolicy::default()
        }
    }

    #[test]
    fn compiles_cidrs_and_addresses() {
        assert_eq!(compile(&EgressPolicy::default()).expect("open"), None);
        let c = compile(&policy(&["10.1.2.3/24", " 192.0.2.7 "], &["10.1.2.9"]))
            .expect("valid")
            .expect("restricts");
        let shown: Vec<String> = c.allow.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.1.2.0/24", "192.0.2.7/32"]);
        assert_eq!(c.deny[0].to_string(), "10.1.2.9/32");
        let mut d = policy(&[], &[]);
        d.domain_allow = vec!["*.example.com".into()];
        let c = compile(&d).expect("valid").expect("restricts");
        assert!(c.proxied() && c.default_deny());
        d.domain_allow = vec!["bad name".into()];
        assert!(matches!(compile(&d), Err(EgressError::BadDomain(_))));
        for bad in ["10.0.0.0/33", "example.com", "::1/128", ""] {
            assert!(
                matches!(compile(&policy(&[bad], &[])), Err(EgressError::BadCidr(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chain_names_fit_iptables() {
        let a = chain_name("sixteen-chars-x", "3f0e8a8e-0000-4000-8000-000000000000");
        assert!(a.len() <= 28, "{a}");
        assert_ne!(a, chain_name("sixteen-chars-x", "another"));
        assert!(a.starts_with("CS-sixteen-chars-x-"));
    }
}
