//! The `api-keys` edge function: `/api/api-keys` (CONTRACT §7).
//!
//! Create/list/get/delete take a JWT, or an API key holding `manage:api_keys`; `GET /current`
//! takes an API key. Every lookup is scoped to the caller's organization.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod routes;
pub mod service;

pub use routes::{ApiDoc, handle, router};

cove_edge::component!(crate::handle);
