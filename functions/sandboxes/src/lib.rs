//! The `sandboxes` edge function: `/api/sandbox` and the deprecated `/api/workspace` aliases
//! (CONTRACT §4), plus the runner's state report `PUT /api/sandbox/{id}/state`.
//!
//! # Desired-state model
//!
//! User actions set `desiredState` with a conditional write (on the row's version) and push the
//! sandbox's spec to its runner agent (`crates/runner-api`), which answers when the container
//! reached that state; the answer is written back, again conditionally (see [`service`]). A
//! second action while one is in flight gets 409 "Sandbox state change in progress". Runners
//! report changes that happen outside a call (a container died) with `PUT /api/sandbox/{id}/state`.
//!
//! # Differences from Daytona
//!
//! * Declarative builds (`buildInfo`) are refused with 400; a sandbox runs a snapshot image: the
//!   `default_snapshot` variable or an image some runner reports in its heartbeats.
//! * `cpu/memory/disk` may be given when no snapshot is named (they size the default snapshot);
//!   with a named snapshot they are refused as in Daytona.
//! * No volumes function exists yet: any `volumes` entry is refused with 400 "Volume <id> not found".
//! * User labels are not sent to the runner (the agent's container labels are immutable, labels are not).
//! * Archive backs the container up to `cove-backup/<id>:<ms>` on its runner and removes it; start
//!   re-creates it from that image on a picked runner (which must have the image: one runner, or
//!   the same runner being picked).
//! * `build-logs` answers a one-line plain-text log at once (there is no build to follow).

mod routes;
mod rules;
pub mod scheduling;
pub mod service;
mod view;

pub use routes::{ApiDoc, handle, router};

cove_edge::component!(crate::handle, settings = cove_edge::config::SandboxSettings);
