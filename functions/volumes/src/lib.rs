//! The `volumes` edge function: `/api/volumes` (CONTRACT §6), S3-backed volumes that sandboxes
//! mount and share.
//!
//! * `POST /api/volumes` (`write:volumes`): a `pending_create` volume; the lifecycle sweep
//!   provisions its storage (`cove_volume_jobs`) and makes it `ready`. Names are unique per
//!   organization (400 "Volume with name X already exists"), at most `volumeQuota` (default 100)
//!   volumes count per organization (400), and without object storage configured the answer is
//!   503.
//! * `GET /api/volumes` (`read:volumes`, `includeDeleted`), `GET /api/volumes/{volumeId}`,
//!   `GET /api/volumes/by-name/{name}` (404 when missing: the SDK's `get(name, create=True)`
//!   relies on it).
//! * `DELETE /api/volumes/{volumeId}` (`delete:volumes`): only in `ready` or `error` (400
//!   otherwise), 409 while a sandbox that is not destroyed uses it; then `pending_delete` for the
//!   sweep, which empties the storage and ends in `deleted` (the name is free again).
//!
//! Another organization's volume is "not found", whatever the caller's permissions.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

pub mod routes;
pub mod rules;
pub mod service;
pub mod view;

pub use cove_volume_jobs::VolumeStorage;
pub use routes::{ApiDoc, State, handle, router};

cove_edge::component!(crate::handle, settings = cove_volume_jobs::VolumeStorage);
