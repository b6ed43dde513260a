//! The `preview` edge function: `/api/preview/...`, what the preview proxy (`cove-proxy`) asks
//! the control plane (CONTRACT §9, ARCH §9).
//!
//! Proxy routes take the proxy's service token (`Authorization: Bearer <proxy_api_key>`, a Spin
//! variable; `cove up` generates one and hands it to the proxy). Without it they answer 401, with
//! any other bearer (a user's API key or JWT included) 403:
//!
//! * `GET /api/preview/{sandboxId}/public` → 200 `true` when the sandbox is public; a private,
//!   destroyed or unknown sandbox is 404 (so existence never leaks).
//! * `GET /api/preview/{sandboxId}/validate/{authToken}` → 200 `true` when the token is the
//!   sandbox's `authToken` (compared in constant time), else 404.
//! * `GET /api/preview/{signedToken}/{port}/sandbox-id` → 200 `"<sandboxId>"` while the signed
//!   preview token is live and names that port, else 404.
//! * `GET /api/preview/{sandboxId}/signing-key` → 200 `"<hex>"`, a key derived from the proxy
//!   token, the sandbox id and its `authToken` (so it changes when the token does).
//! * `GET /api/preview/{sandboxId}/file-url/verify?method=&path=&expires=&signature=` → 200
//!   `true` when `signature` is the sandbox's signed-file-URL signature (CONTRACT §10.7:
//!   `v1_` + base64url(HMAC-SHA256(key, "v1:files:{METHOD}:{path}:{expires}"))) and `expires`
//!   is 0 or not yet past, else `false`; 404 for an unknown or destroyed sandbox. The proxy asks
//!   it for every `/toolbox/{id}/files/download` (GET) or `/files/upload-v2` (POST) that comes
//!   without credentials, uncached, so a rotation takes effect at once.
//! * `GET /api/preview/{sandboxId}/preview-warning?port=` → `{"enabled": false}` (Cove has no
//!   interstitial page); 404 for an unknown sandbox.
//! * `POST /api/preview/{sandboxId}/last-activity` → 201: the proxy's (throttled) activity
//!   record of proxied traffic (Cove's spelling of Daytona's proxy call to
//!   `/api/sandbox/{id}/last-activity`, which takes a user credential here).
//!
//! User routes take the user's own credential, as the proxy received it:
//!
//! * `GET /api/preview/{sandboxId}/access` (API key or JWT) → 200 `true` when the caller belongs
//!   to the sandbox's organization (a JWT's other memberships count: the organization header is
//!   ignored), else 404; a missing or invalid credential is 401.
//! * `GET /api/preview/{sandboxId}/toolbox-access` → 200 `true` when the toolbox component would
//!   forward a call to this sandbox (organization, `write:sandboxes`, `started`, a runner; it
//!   records the activity the same way), else that component's refusal (401/403/404/400/503).
//!   The proxy's `/toolbox/{sandboxId}/...` path asks it (cached a few seconds).

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod routes;
pub mod service;
pub mod settings;

pub use routes::{ApiDoc, handle, router};
pub use settings::PreviewSettings;

cove_edge::component!(crate::handle, settings = crate::settings::PreviewSettings);
