//! Sandbox network isolation: every sandbox whose policy is not `networkBlockAll` (that one keeps
//! network `none`) joins one bridge network the agent owns, and the host's firewall keeps that
//! bridge away from everything local while NAT'd egress to the outside keeps working.
//!
//! - **The network** ([`bridge`]): a Docker bridge network (default `cove-sandboxes`, bridge
//!   interface `cove0`) created at start when missing, with inter-container traffic off
//!   (`com.docker.network.bridge.enable_icc=false`). An existing network of that name must have
//!   the same bridge name and ICC off, or the agent refuses to start. Containers of this runner
//!   still on another network (made by an older agent) are moved onto it at start.
//! - **The rules** ([`firewall`]), installed with the kernel's own tools (`iptables`,
//!   `iptables-restore`; Debian package `iptables`) in two chains of the filter table named
//!   after the bridge:
//!   - `COVE-IN-<bridge>`, jumped to from `INPUT` for packets arriving on the bridge: replies of
//!     connections the host opened (ESTABLISHED, RELATED) pass, everything else is rejected.
//!     A sandbox reaches no service of the host, whatever address it uses (the bridge gateway,
//!     `docker0`, the host's LAN address). The host still reaches sandbox ports.
//!   - `COVE-FWD-<bridge>`, jumped to from `DOCKER-USER` (or `FORWARD` without Docker's chain)
//!     for packets routed from the bridge: rejected towards the bridge itself (ICC, also without
//!     Docker's own rule), `docker0` and Docker's `br-*` bridges, link-local `169.254.0.0/16`
//!     (cloud metadata), the subnet of every local Docker network and the operator's
//!     `--sandbox-deny` ranges. Anything else returns to Docker's rules, which accept and NAT it.
//!   - Both chains first let DNS (port 53) through to the host's `nameserver`s: Docker's
//!     embedded DNS forwards queries to them from the sandbox's namespace, and they may be a
//!     host address or link-local (169.254.169.254 on some clouds).
//!   - IPv6 is off on the bridge (`net.ipv6.conf.<bridge>.disable_ipv6=1`), so the kernel drops
//!     IPv6 arriving there (containers have IPv6 off too: the network has none);
//!     `net.bridge.bridge-nf-call-iptables` must be 1 so that bridged traffic meets the rules.
//!
//! The rules are written atomically (`iptables-restore --noflush` replaces the two chains), the
//! jumps are kept exactly once, and everything is checked with `iptables -C` afterwards; a
//! failure at start stops the agent unless `--external-network-isolation` says the host's
//! firewall isolates the sandboxes itself. Every 30 s (`--isolation-check-secs`) the agent
//! writes and checks the rules again (a firewall reload that flushed them is repaired within
//! that time). Agents sharing a host serialise the setup with a lock file.

pub mod bridge;
pub mod egress;
pub mod firewall;

use std::time::Duration;

use bollard::Docker;

/// How often the rules are written and checked again by default.
pub const REASSERT_EVERY: Duration = Duration::from_secs(30);

/// Default name of the sandbox network.
pub const DEFAULT_NETWORK: &str = "cove-sandboxes";
/// Default bridge interface of the sandbox network.
pub const DEFAULT_BRIDGE: &str = "cove0";

/// Default NFLOG group of the CIDR decisions (`--egress-nflog-group`).
pub const DEFAULT_NFLOG_GROUP: u16 = 1616;

/// What the agent needs to know to isolate sandboxes.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSettings {
    /// Docker network every non-blocked sandbox joins.
    pub name: String,
    /// Its bridge interface (at most 15 characters).
    pub bridge: String,
    /// Whether the agent installs the firewall rules (false: the host isolates the bridge).
    pub firewall: bool,
    /// Extra destinations sandboxes may not reach (for example the VPC's range).
    pub deny: Vec<ipnet::Ipv4Net>,
    /// How often the rules are written and checked again.
    pub reassert_every: Duration,
    /// A hosts file the egress proxy resolves names with before the host's resolver.
    pub egress_hosts: Option<std::path::PathBuf>,
    /// NFLOG group the policy chains log their CIDR decisions to (`crate::egress::nflog`).
    pub nflog_group: u16,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            name: DEFAULT_NETWORK.into(),
            bridge: DEFAULT_BRIDGE.into(),
            firewall: true,
            deny: Vec::new(),
            reassert_every: REASSERT_EVERY,
            egress_hosts: None,
            nflog_group: DEFAULT_NFLOG_GROUP,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("the Docker engine failed to {op}: {message}")]
    Engine { op: &'static str, message: String },
    #[error("network {name} exists but cannot isolate sandboxes: {why}")]
    Unusable { name: String, why: String },
    #[error("invalid bridge name {0:?} (1-15 of [A-Za-z0-9_.-])")]
    BadBridge(String),
    #[error("cannot run {cmd} (install Debian's `iptables` package)")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("an isolation rule is not in place after writing it: {0}")]
    Missing(String),
    #[error("kernel setting {path}: {why}")]
    Sysctl { path: String, why: String },
    #[error("cannot take the lock {path}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A bridge interface name the kernel and the chain names accept.
pub fn validate_bridge(name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::BadBridge(name.to_owned()))
    }
}

/// Agent start: the network exists and is usable, this runner's containers are on it, and (when
/// the agent owns the firewall) the rules are in place and checked.
pub async fn setup(
    docker: &Docker,
    settings: &NetworkSettings,
    runner_id: &str,
) -> Result<(), NetworkError> {
    validate_bridge(&settings.bridge)?;
    let lock = HostLock::take().await?;
    let net = bridge::ensure(docker, settings).await?;
    if settings.firewall {
        start_proxy(settings, net.gateway).await;
        crate::egress::nflog::start(settings.nflog_group);
        assert_rules(docker, settings).await?;
    } else {
        tracing::warn!(network = %settings.name, "--external-network-isolation: the agent installs no firewall rules; the host must keep sandboxes from each other and from the host");
    }
    drop(lock);
    bridge::migrate(docker, &settings.name, runner_id).await?;
    tracing::info!(network = %settings.name, bridge = %settings.bridge, subnets = ?net.subnets, firewall = settings.firewall, "sandbox network ready");
    Ok(())
}

/// Starts the egress proxy of domain policies on the bridge's address. Without it a domain
/// policy cannot be applied (its sandbox goes to `error`), so a failure is logged, not fatal.
async fn start_proxy(settings: &NetworkSettings, gateway: Option<std::net::Ipv4Addr>) {
    if crate::egress::proxy::port().is_some() {
        return;
    }
    let Some(gw) = gateway else {
        tracing::error!(network = %settings.name, "the sandbox network has no gateway address: domain policies cannot be enforced");
        return;
    };
    let resolver = crate::egress::resolve::Resolver::new(settings.egress_hosts.clone());
    if let Err(e) = crate::egress::proxy::start(gw, resolver).await {
        tracing::error!(%gw, error = %e, "the egress proxy cannot listen: domain policies cannot be enforced");
    }
}

/// Writes and checks the rules once (under the host lock).
async fn assert_rules(docker: &Docker, settings: &NetworkSettings) -> Result<(), NetworkError> {
    firewall_of(docker, settings).await?.apply().await
}

/// The bridge's rules with every sandbox's egress policy.
async fn firewall_of(
    docker: &Docker,
    settings: &NetworkSettings,
) -> Result<firewall::Firewall, NetworkError> {
    let subnets = bridge::local_subnets(docker).await?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let forbidden = subnets.iter().chain(&settings.deny).copied().collect();
    crate::egress::proxy::set_forbidden(forbidden);
    Ok(
        firewall::Firewall::new(&settings.bridge, subnets, settings.deny.clone())
            .with_resolvers(firewall::resolvers(&resolv))
            .with_policies(egress::snapshot())
            .with_proxy(crate::egress::proxy::port())
            .with_nflog(crate::egress::nflog::group()),
    )
}

/// Writes the rules (an egress policy changed): one `iptables-restore` transaction under the
/// host lock, without the checks of the periodic re-assertion.
pub async fn write_rules(docker: &Docker, settings: &NetworkSettings) -> Result<(), NetworkError> {
    let _lock = HostLock::take().await?;
    firewall_of(docker, settings).await?.write().await
}

/// Re-asserts the rules every `reassert_every` (runs until the agent stops).
pub async fn reassert(docker: Docker, settings: NetworkSettings) {
    if !settings.firewall {
        return;
    }
    let mut tick = tokio::time::interval(settings.reassert_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let result = match HostLock::take().await {
            Ok(_lock) => assert_rules(&docker, &settings).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %crate::error::chain(&e), bridge = %settings.bridge, "the sandbox isolation rules could not be re-asserted");
        }
    }
}

/// An exclusive lock shared by the agents of one host (network creation, jump edits).
struct HostLock {
    _file: std::fs::File,
}

impl HostLock {
    async fn take() -> Result<Self, NetworkError> {
        let dir = if std::path::Path::new("/run").is_dir() {
            std::path::PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        };
        let path = dir.join("cove-runner-network.lock");
        let shown = path.display().to_string();
        let err = |source| NetworkError::Lock {
            path: shown.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| err(std::io::Error::other(e)))?
            .map_err(err)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names() {
        assert!(validate_bridge("cove0").is_ok());
        assert!(validate_bridge("cove-test.1_x").is_ok());
        assert!(validate_bridge("").is_err());
        assert!(validate_bridge("sixteen-chars-xx").is_err());
        assert!(validate_bridge("a b").is_err());
        assert!(validate_bridge("a;b").is_err());
    }
}
