//! Every integration test of this package in one binary (one link, one copy of the shared
//! generics instead of one per file): each `tests/*.rs` file is a module here.
//! `scripts/check-tests.sh` fails when a file under `tests/` is missing from this list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "body_limits.rs"]
mod body_limits;
#[path = "connections.rs"]
mod connections;
#[path = "lifecycle.rs"]
mod lifecycle;
#[path = "limits.rs"]
mod limits;
#[path = "registry.rs"]
mod registry;
#[path = "runner_supervision.rs"]
mod runner_supervision;
#[path = "s3_scope.rs"]
mod s3_scope;
#[path = "sdk_upload.rs"]
mod sdk_upload;
#[path = "serve.rs"]
mod serve;
