//! Every integration test of this package in one binary (one link, one copy of the shared
//! generics instead of one per file): each `tests/*.rs` file is a module here.
//! `scripts/check-tests.sh` fails when a file under `tests/` is missing from this list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "agent.rs"]
mod agent;
#[path = "cove.rs"]
mod cove;
#[path = "events.rs"]
mod events;
#[path = "inprocess.rs"]
mod inprocess;
