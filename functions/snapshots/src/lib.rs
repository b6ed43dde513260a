//! The `snapshots` edge function: `/api/snapshots` (CONTRACT §5), custom sandbox images.
//!
//! * Create (`POST /api/snapshots`, `write:snapshots`) from `imageName` (a tag or digest is
//!   required, `:latest` is refused) or from `buildInfo {dockerfileContent, contextHashes}`
//!   (at most [`rules::MAX_DOCKERFILE_BYTES`]); names unique per organization (409), snapshot
//!   quota (`snapshotQuota`, default 30: 403 "Snapshot quota exceeded"), sizes within the
//!   per-sandbox limits. A new snapshot is `pending`; the lifecycle sweep picks a runner, pulls
//!   or builds it, and moves it on (`pulling`/`building` → `active` | `error` | `build_failed`).
//!   A build's ref is content-addressed (`cove_runner_api::build_ref` under the
//!   `internal_registry`): when an active snapshot of the organization already has it, the new
//!   one is `active` at once (nothing is rebuilt).
//! * Reads (`GET /api/snapshots` paged as `PaginatedSnapshots`, `GET /api/snapshots/{id}` by id
//!   or name): the organization's own snapshots, the general ones, and the built-in
//!   `default_snapshot` (a synthesized general, active snapshot, see [`view::default_snapshot`]).
//! * Delete (`delete:snapshots`): `removing` for the sweep (which removes it from the runners and
//!   then the row); a snapshot that never reached a runner goes at once.
//! * `activate` / `deactivate` / `toggle` (`write:snapshots`), `general` (system admin, also as
//!   Daytona's `/api/admin/snapshots/{id}/general`).
//! * `build-logs` relays the initial runner's log (`GET /v1/snapshots/{id}/logs`); inside the
//!   Spin component `follow=true` streams it until the job ends. `build-logs-url` points at it.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod relay;
pub mod routes;
pub mod rules;
pub mod service;
pub mod settings;
pub mod view;

pub use routes::{ApiDoc, handle, router};
pub use settings::SnapshotSettings;

#[cfg(target_arch = "wasm32")]
mod component;
