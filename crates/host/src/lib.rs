//! `cove-host`: the Spin-compatible runtime of `cove`.
//!
//! It reads a Spin manifest (`spin.toml`), runs its build commands, and serves each component's
//! `wasi:http` handler (0.3, as `spin-sdk` 7 exports, or 0.2) with a fresh instance per request:
//! `allowed_outbound_hosts` enforced, `spin:variables` provided, request bodies bounded per
//! component, connections capped. It knows nothing of Cove's backends: the local platform
//! (`cove-local`, the `cove` binary) supplies the variable values and starts everything else.
//!
//! Entry points: [`manifest::Manifest::load`], [`build::run`], [`variables::AppVariables::resolve`],
//! [`load::load`] (→ [`app::App`]) and [`server::serve`].

pub mod app;
pub mod body_limit;
pub mod build;
pub mod engine;
pub mod error;
pub mod guest_log;
pub mod load;
pub mod log_throttle;
pub mod manifest;
pub mod outbound;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod spin;
pub mod variables;

pub use error::Error;
