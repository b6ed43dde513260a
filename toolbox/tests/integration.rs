//! Every integration test of this package in one binary (one link, one copy of the shared
//! generics instead of one per file): each `tests/*.rs` file is a module here.
//! `scripts/check-tests.sh` fails when a file under `tests/` is missing from this list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "e2e.rs"]
mod e2e;
#[path = "interpreter.rs"]
mod interpreter;
#[path = "limits.rs"]
mod limits;
#[path = "pty.rs"]
mod pty;
#[path = "tbx.rs"]
mod tbx;
