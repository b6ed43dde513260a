//! The proxy's settings (flags, or `COVE_PROXY_*` environment variables).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `cove-proxy` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cove-proxy",
    version,
    about = "Cove's preview and toolbox proxy"
)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one (the bound address is printed).
    #[arg(long, env = "COVE_PROXY_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// The control plane's base URL (its `/api/preview/...` and `/api/runners/by-sandbox/...`).
    #[arg(
        long,
        env = "COVE_PROXY_API_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub api_url: String,
    /// The proxy's service token (the control plane's `proxy_api_key`).
    #[arg(long, env = "COVE_PROXY_API_TOKEN", hide_env_values = true)]
    pub api_token: String,
    /// The preview domain: hosts `{port}-{sandboxId}.{domain}` are previews (a port in the
    /// Host header is ignored). Every other host serves the proxy's own routes (`/toolbox/...`).
    #[arg(long, env = "COVE_PROXY_DOMAIN", default_value = "preview.localhost")]
    pub domain: String,
    /// How long a "public" answer is trusted, in milliseconds.
    #[arg(long, env = "COVE_PROXY_PUBLIC_TTL_MS", default_value_t = 5_000)]
    pub public_ttl_ms: u64,
    /// How long a granted credential (token, key, JWT, signed URL) is trusted, in milliseconds.
    #[arg(long, env = "COVE_PROXY_AUTH_TTL_MS", default_value_t = 5_000)]
    pub auth_ttl_ms: u64,
    /// How long a refusal is remembered, in milliseconds.
    #[arg(long, env = "COVE_PROXY_DENY_TTL_MS", default_value_t = 2_000)]
    pub deny_ttl_ms: u64,
    /// How long a sandbox's runner is remembered (dropped at once when the runner fails), in seconds.
    #[arg(long, env = "COVE_PROXY_RUNNER_TTL_SECS", default_value_t = 120)]
    pub runner_ttl_secs: u64,
    /// Least seconds between two activity records of one sandbox.
    #[arg(long, env = "COVE_PROXY_ACTIVITY_SECS", default_value_t = 30)]
    pub activity_secs: u64,
    /// The lending socket of the runner agent on this host (`<agent data dir>/lend.sock`):
    /// previews of its sandboxes then go straight to their daemons (one hop less).
    #[arg(long, env = "COVE_PROXY_RUNNER_SOCKET")]
    pub runner_socket: Option<PathBuf>,
}

/// The parsed settings the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_url: String,
    pub api_token: String,
    /// Lower-cased, without a port or leading dot.
    pub domain: String,
    pub public_ttl: Duration,
    pub auth_ttl: Duration,
    pub deny_ttl: Duration,
    pub runner_ttl: Duration,
    pub activity_interval: Duration,
    pub runner_socket: Option<PathBuf>,
}

impl Config {
    pub fn from_args(a: &Args) -> Self {
        let domain = a.domain.trim().trim_start_matches('.').to_ascii_lowercase();
        let domain = crate::host::strip_port(&domain).to_owned();
        Self {
            api_url: a.api_url.trim_end_matches('/').to_owned(),
            api_token: a.api_token.clone(),
            domain,
            public_ttl: Duration::from_millis(a.public_ttl_ms),
            auth_ttl: Duration::from_millis(a.auth_ttl_ms),
            deny_ttl: Duration::from_millis(a.deny_ttl_ms),
            runner_ttl: Duration::from_secs(a.runner_ttl_secs),
            activity_interval: Duration::from_secs(a.activity_secs),
            runner_socket: a.runner_socket.clone(),
        }
    }
}
