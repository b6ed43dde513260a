//! The only definition of Cove's wire types: Daytona DTOs, typed IDs and the error envelope.
//!
//! No I/O here; this crate builds for `wasm32-wasip2` and the host.

pub mod api_keys;
pub mod error;
pub mod ids;
pub mod orgs;
pub mod permissions;
pub mod runner;
pub mod sandbox;
pub mod time;
pub mod toolbox;

pub use error::{ApiError, ErrorEnvelope};
