//! The `runners` edge function: `/api/runners` (CONTRACT §8 "Runners").
//!
//! * Admin routes (create, list, get, `/full`, scheduling, draining, delete, `by-sandbox`,
//!   `by-snapshot-ref`) take a user credential of a **system admin**; anyone else gets 403.
//! * Runner routes (`/me`, `/me/snapshots`, `/healthcheck`) take the runner's own token
//!   (`Authorization: Bearer <token>`, see `cove_edge::runner_auth`); a missing or unknown token is 401.
//!
//! * `by-sandbox` also takes the preview proxy's service token (`proxy_api_key`, see [`serve`]).
//!
//! The token is generated on create (32 random bytes, hex), shown once in the `201 {id, apiKey}`
//! answer and afterwards only by `/full`, `/me` and `/by-sandbox` (the control plane and the proxy
//! present it to the runner). The `state` shown is `unresponsive` as soon as a ready runner's last
//! heartbeat is older than `HEARTBEAT_TIMEOUT_SECS` (computed on read); the lifecycle sweep persists it.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod proxy;
mod routes;
pub mod service;

pub use proxy::{ProxySettings, serve};
pub use routes::{ApiDoc, handle, router};

cove_edge::component!(crate::serve, settings = crate::proxy::ProxySettings);
