//! `cove-proxy`: Cove's preview and toolbox proxy (CONTRACT §9, ARCH §9), native (no WASM in
//! the data path).
//!
//! * **Previews**: a Host `{port}-{sandboxId}.{domain}` (or `{port}-{signedToken}.{domain}`) is
//!   admitted ([`auth`]), then sent to the sandbox's runner agent as
//!   `{runner}/sandboxes/{id}/toolbox/proxy/{port}{path}`; the agent hands it to the sandbox's
//!   daemon, which dials `127.0.0.1:{port}` inside the sandbox (so previews work with the
//!   sandbox's network blocked). Bodies stream both ways, websockets are relayed. When the
//!   runner is the agent of this host (`--runner-socket`), the request goes straight to the
//!   daemon over a connection the agent lends ([`local`]).
//! * **Toolbox**: `/toolbox/{sandboxId}/{path}` on any other host is the toolbox API (the
//!   `toolbox` component's checks, asked of `/api/preview/{id}/toolbox-access` and cached) sent
//!   to `{runner}/sandboxes/{id}/toolbox/{path}`, websockets included (session logs `follow`).
//! * **Caches** ([`config::Config`]): "public" and granted credentials 5 s, refusals 2 s, the
//!   runner of a sandbox 2 min (dropped when the runner does not answer). Making a sandbox
//!   private, regenerating its token or deleting an API key takes effect within 5 s.
//! * **Activity**: proxied preview traffic is recorded (`POST /api/preview/{id}/last-activity`)
//!   at most every `--activity-secs` per sandbox, unless the request has
//!   `X-Daytona-Skip-Last-Activity-Update: true`.
//! * **Real-time events** ([`events`]): the Socket.IO server of the SDKs at `/api/socket.io/`,
//!   relaying the control plane's `GET /api/events/sandboxes` to each organization's sockets.
//! * **Answers of its own**: 400 for a malformed preview host or port, 401 (an HTML page for
//!   browsers, else a JSON envelope) without valid credentials, 404 for an unknown route or
//!   sandbox, 502 when the runner (or the port in the sandbox) does not answer, `GET /health`.

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod events;
pub mod forward;
pub mod host;
pub mod local;
pub mod server;
pub mod toolbox;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;

/// The body of everything the proxy sends and answers.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The pooled HTTP/1.1 client (control plane and runners).
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

pub fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A client with keep-alive connections.
pub fn client() -> Client {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(http)
}

pub use server::{Proxy, serve};
