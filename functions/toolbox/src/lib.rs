//! The `toolbox` edge function: the toolbox proxy (CONTRACT §0, §10).
//!
//! Serves `/toolbox/{sandboxId}/{path}` (where `Sandbox.toolboxProxyUrl` points) and the deprecated
//! `/api/toolbox/{sandboxId}/toolbox/{path}`, and forwards each call to
//! `{runner.apiUrl}/v1/sandboxes/{sandboxId}/toolbox/{path}?{query}` on the sandbox's runner agent
//! with the runner's token (crates/runner-api), which hands it to the daemon in the sandbox.
//!
//! * Caller: an API key or a JWT (+ `X-Daytona-Organization-ID`); none or invalid → 401.
//! * A sandbox that is unknown, destroyed or in another organization → 404 (the same answer, so
//!   existence never leaks). Every member of the organization may use the toolbox (as Daytona's
//!   proxy, which checks organization access only).
//! * A sandbox that is not `started` → **400** `"Sandbox is not running (state: …)"`, code
//!   `SANDBOX_NOT_STARTED` (Daytona answers toolbox calls to a stopped sandbox with a 400).
//! * No runner, or a runner without an API URL → 503; a runner that does not answer → 502.
//! * Activity: `lastActivityAt` is bumped, at most once a minute per sandbox (auto-stop reads it).
//! * Streaming: inside the component the request body stream is handed to the outgoing request
//!   and the runner's response body stream becomes the component's response, so uploads and
//!   downloads of any size pass through in 16 KiB chunks without being buffered.
//! * WebSockets (session logs with `follow=true`, PTY, the code interpreter) cannot be upgraded
//!   through a `wasi:http` component: such requests get a 400 envelope. Session logs without
//!   `follow` work and return the whole output so far.
//! * Headers: only `content-type`, `content-length`, `accept`, `user-agent`,
//!   `x-daytona-sdk-version` and `x-daytona-source` go to the runner (never the caller's
//!   `Authorization`); only `content-type`, `content-length` and `content-disposition` come back
//!   (the daemon runs inside the sandbox and must not set cookies on the API's origin).

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

pub mod path;
mod routes;
pub mod service;

pub use routes::{ApiDoc, handle};

#[cfg(target_arch = "wasm32")]
mod component;
