//! Every integration test of this package in one binary (one link, one copy of the shared
//! generics instead of one per file): each `tests/*.rs` file is a module here.
//! `scripts/check-tests.sh` fails when a file under `tests/` is missing from this list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

#[path = "backups.rs"]
mod backups;
#[path = "egress.rs"]
mod egress;
#[path = "fake.rs"]
mod fake;
#[path = "fake_snapshots.rs"]
mod fake_snapshots;
#[path = "isolation.rs"]
mod isolation;
#[path = "lifecycle.rs"]
mod lifecycle;
#[path = "metrics.rs"]
mod metrics;
#[path = "network.rs"]
mod network;
#[path = "openapi.rs"]
mod openapi;
#[path = "restart.rs"]
mod restart;
#[path = "snapshots.rs"]
mod snapshots;
#[path = "toolbox.rs"]
mod toolbox;
#[path = "toolbox_stress.rs"]
mod toolbox_stress;
