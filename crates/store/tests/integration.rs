//! Every integration test of this package in one binary (one link, one copy of the shared
//! generics instead of one per file): each `tests/*.rs` file is a module here.
//! `scripts/check-tests.sh` fails when a file under `tests/` is missing from this list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "events.rs"]
mod events;
#[path = "orgs.rs"]
mod orgs;
#[path = "runners.rs"]
mod runners;
#[path = "sandboxes.rs"]
mod sandboxes;
#[path = "snapshots.rs"]
mod snapshots;
#[path = "suite.rs"]
mod suite;
#[path = "tokens.rs"]
mod tokens;
#[path = "usage.rs"]
mod usage;
