//! The preview proxy of `cove up` (`cove-proxy`, in-process, on its own loopback port).
//!
//! `cove up` generates the proxy's service token for the run and hands it to both sides (the
//! application's `proxy_api_key`, the proxy's control-plane client). Preview URLs are
//! `http://{port}-{sandboxId}.{domain}:{proxy port}` with `domain` = `--proxy-domain`
//! (default `preview.localhost`: browsers and curl resolve every `*.localhost` name to the
//! loopback, no DNS needed). The sandboxes' `toolboxProxyUrl` is the proxy's `/toolbox` too
//! (`--toolbox-via proxy`, the default: websockets such as PTY terminals, the code interpreter and
//! log follow need it); `--toolbox-via component` leaves it to the `toolbox` component.
//!
//! The SDKs open their Socket.IO connection of real-time events at `{DAYTONA_API_URL}/socket.io/`,
//! i.e. on the control plane's listener: `cove up` serves the proxy's relay there as a native
//! route of the host ([`LocalProxy::spawn`]), as a deployment's load balancer routes
//! `/api/socket.io/` to cove-proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cove_host::server::{NativeHandler, NativeRoute};
use cove_proxy::config::Config;
use tokio::net::TcpListener;

/// The proxy's flags of `cove up`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Do not start the preview proxy (preview URLs then lead nowhere).
    #[arg(long)]
    pub no_proxy: bool,
    /// Address of the preview proxy; port 0 picks a free port (printed as `COVE_PROXY_URL=`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub proxy_listen: SocketAddr,
    /// The preview domain: previews are `{port}-{sandboxId}.{domain}:{proxy port}`.
    #[arg(long, default_value = "preview.localhost")]
    pub proxy_domain: String,
    /// What the sandboxes' `toolboxProxyUrl` names: the proxy's `/toolbox` (toolbox calls stream
    /// natively, websockets included) or the `toolbox` component's (no websockets: PTY, the code
    /// interpreter and log follow then fail).
    #[arg(long, value_enum, env = "COVE_TOOLBOX_VIA", default_value_t = ToolboxVia::Proxy)]
    pub toolbox_via: ToolboxVia,
    /// Milliseconds a granted preview credential or a "public" answer is trusted.
    #[arg(long, default_value_t = 5_000)]
    pub proxy_auth_ttl_ms: u64,
}

/// Who serves the toolbox URL handed to the SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ToolboxVia {
    /// `cove-proxy`'s `/toolbox/{sandboxId}/...`.
    Proxy,
    /// The `toolbox` component's `/toolbox/{sandboxId}/...` on the control plane.
    Component,
}

/// A bound, not yet serving, proxy.
pub struct LocalProxy {
    listener: TcpListener,
    addr: SocketAddr,
    token: String,
    args: ProxyArgs,
}

impl LocalProxy {
    /// Binds the proxy's port (`None` with `--no-proxy`).
    pub async fn bind(args: &ProxyArgs) -> anyhow::Result<Option<Self>> {
        if args.no_proxy {
            return Ok(None);
        }
        let listener = TcpListener::bind(args.proxy_listen)
            .await
            .with_context(|| format!("cannot listen on {} (--proxy-listen)", args.proxy_listen))?;
        let addr = listener.local_addr()?;
        let token = cove_store::random::hex_token(32).context("random source failed")?;
        Ok(Some(Self {
            listener,
            addr,
            token,
            args: args.clone(),
        }))
    }

    fn domain(&self) -> String {
        format!(
            "{}:{}",
            self.args.proxy_domain.trim_matches('.'),
            self.addr.port()
        )
    }

    /// The application variables the proxy sets (the environment still wins).
    pub fn variables(&self, managed: &HashMap<String, String>) -> HashMap<String, String> {
        let mut out = managed.clone();
        out.insert("proxy_api_key".into(), self.token.clone());
        out.insert("proxy_domain".into(), format!("http://{}", self.domain()));
        if self.args.toolbox_via == ToolboxVia::Proxy {
            out.insert(
                "toolbox_proxy_url".into(),
                format!("http://{}/toolbox", self.addr),
            );
        }
        out
    }

    /// What `cove up` prints about the proxy.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("COVE_PROXY_URL=http://{}", self.addr),
            format!("COVE_PREVIEW_DOMAIN={}", self.domain()),
        ]
    }

    /// Serves until the task is aborted; the control plane is at `api`, the local runner
    /// agent's lending socket at `runner_socket` (its previews then skip the agent's HTTP hop).
    /// Also returns the route of the proxy's Socket.IO relay, for the control plane's listener.
    pub fn spawn(
        self,
        api: SocketAddr,
        runner_socket: PathBuf,
    ) -> (tokio::task::JoinHandle<()>, NativeRoute) {
        let ttl = std::time::Duration::from_millis(self.args.proxy_auth_ttl_ms);
        let cfg = Config {
            api_url: format!("http://{api}"),
            api_token: self.token,
            domain: self
                .args
                .proxy_domain
                .trim_matches('.')
                .to_ascii_lowercase(),
            public_ttl: ttl,
            auth_ttl: ttl,
            deny_ttl: ttl.min(std::time::Duration::from_secs(2)),
            runner_ttl: std::time::Duration::from_secs(120),
            activity_interval: std::time::Duration::from_secs(30),
            runner_socket: Some(runner_socket),
        };
        tracing::info!(addr = %self.addr, domain = %cfg.domain, "preview proxy serving");
        let proxy = cove_proxy::Proxy::new(cfg);
        let relay = proxy.events().clone();
        let handler: NativeHandler = Arc::new(move |req| {
            let relay = relay.clone();
            Box::pin(async move { relay.handle(req).await })
        });
        let route = NativeRoute::new(cove_proxy::events::SOCKET_IO_PATH, handler);
        let task = tokio::spawn(cove_proxy::serve(
            self.listener,
            proxy,
            std::future::pending::<()>(),
        ));
        (task, route)
    }
}
