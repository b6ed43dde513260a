//! The `sandboxes` edge function: `/api/sandbox` and the deprecated `/api/workspace` aliases
//! (CONTRACT §4), plus the runner's state report `PUT /api/sandbox/{id}/state`.
//!
//! # Desired-state model
//!
//! User actions go through `cove_transition` (begin → push → settle, see [`service`]): a
//! conditional write sets `desiredState`, the transitional state and the row's transition, the
//! spec goes to the runner agent (`crates/runner-api`) within a bound well below the host's
//! request deadline, and the outcome is written back. What is not known in time answers the
//! transitional state; the runner's state report (`PUT /api/sandbox/{id}/state`, a
//! `cove_runner_api::StateReport`) or the lifecycle sweep settles it. A second action while one is
//! in flight gets 409 "Sandbox state change in progress".
//!
//! # Differences from Daytona
//!
//! * Declarative builds (`buildInfo`) are refused with 400 (create a snapshot from the build
//!   first). A sandbox runs the `default_snapshot` or a snapshot the organization sees (its own
//!   or a general one, by id or name, `active`: otherwise 400 "Snapshot <name> is <state>"),
//!   whose image ref and sizes it takes; any other image is "Snapshot <name> not found", even
//!   one a runner holds (another organization's backup, a local tag).
//! * `cpu/memory/disk` may be given when no snapshot is named (they size the default snapshot);
//!   with a named snapshot they are refused as in Daytona.
//! * No volumes function exists yet: any `volumes` entry is refused with 400 "Volume <id> not found".
//! * User labels are not sent to the runner (the agent's container labels are immutable, labels are not).
//! * Archive backs the container up on its runner (the agent names the image) and removes it;
//!   start re-creates it from that image on the same runner (`backupRunnerId`; 503 while it is
//!   unavailable). Destroying a sandbox removes its backups from that runner.
//! * `build-logs` answers a one-line plain-text log at once (there is no build to follow).

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod routes;
mod rules;
pub mod service;
mod view;

pub use routes::{ApiDoc, handle, router};

cove_edge::component!(crate::handle, settings = cove_edge::config::SandboxSettings);
