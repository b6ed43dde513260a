//! `cove`: a local, Spin-compatible runtime for the Cove control plane.
//!
//! It reads a Spin manifest (`spin.toml`), serves each component's `wasi:http` handler
//! (0.3, as `spin-sdk` 7 exports, or 0.2) with a fresh instance per request, enforces
//! `allowed_outbound_hosts`, provides `spin:variables`, and embeds DynamoDB (dynoxide)
//! and S3 (s3s-fs) for local use.

pub mod app;
pub mod backends;
pub mod cli;
pub mod engine;
pub mod guest_log;
pub mod lifecycle_timer;
pub mod manifest;
pub mod outbound;
pub mod routes;
pub mod runner_supervisor;
pub mod runtime;
pub mod server;
pub mod spin;
pub mod variables;
