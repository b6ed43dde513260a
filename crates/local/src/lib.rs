//! `cove-local`: the Cove control plane on one machine, the `cove` binary.
//!
//! `cove up` runs the application of `spin.toml` on the Spin-compatible runtime (`cove-host`)
//! and supplies what Cove needs around it: embedded DynamoDB (dynoxide) and S3 (s3s-fs), the
//! table and the bootstrap admin, a local runner agent it supervises, and the lifecycle timer.
//! `cove build` runs the manifest's build commands; `cove rotate-admin-key` replaces the admin
//! key.

pub mod admin;
pub mod backends;
pub mod cli;
pub mod lifecycle_timer;
pub mod logging;
pub mod preview_proxy;
pub mod registry;
pub mod runner_supervisor;
pub mod s3_scope;
pub mod secrets;
pub mod tls;
pub mod up;
