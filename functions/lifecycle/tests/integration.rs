//! Every integration test of this package in one binary (one link, one copy of the shared
//! generics instead of one per file): each `tests/*.rs` file is a module here.
//! `scripts/check-tests.sh` fails when a file under `tests/` is missing from this list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "on_docker.rs"]
mod on_docker;
#[path = "races.rs"]
mod races;
#[path = "recovery.rs"]
mod recovery;
#[path = "snapshots.rs"]
mod snapshots;
#[path = "sweep.rs"]
mod sweep;
#[path = "sweep_route.rs"]
mod sweep_route;
#[path = "transitions.rs"]
mod transitions;
