//! The `registries` edge function: `/api/docker-registry` (CONTRACT §8) and
//! `/api/object-storage/push-access` (CONTRACT §5).
//!
//! - Registry CRUD in the caller's organization; passwords are write-only (sealed at rest, see
//!   `cove_store::registries`). The internal registry (variable `internal_registry`) is listed as
//!   `registryType: internal`, synthesized, read-only.
//! - `registry-push-access`: a signed, short-lived credential (`cove_scoped_creds`) for the
//!   organization's project `cove-<orgId>` of the internal registry; `cove up`'s registry gate
//!   enforces it.
//! - `object-storage/push-access`: S3 credentials for `{bucket}/{orgId}/`. Locally signed scoped
//!   credentials that the embedded S3 server enforces; with `object_storage_sts_role_arn` set,
//!   STS `AssumeRole` credentials restricted by a session policy on the prefix (`sts`).

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

pub mod access;
mod routes;
pub mod service;
pub mod settings;
pub mod sts;

pub use routes::{ApiDoc, State, handle, router};
pub use settings::RegistrySettings;

cove_edge::component!(crate::handle, settings = crate::RegistrySettings);
