//! Sandboxes: the row `SANDBOX#<id>` / `#META`, the organization's name lock
//! `ORG#<orgId>` / `SANDBOXNAME#<name>`, the organization's usage counters `ORG#<orgId>` / `USAGE`,
//! and the runner's `assignedSandboxes` counter, all moved together in one transaction.
//!
//! Invariants the repository keeps (every write of a row goes through [`SandboxRepo::create`] or
//! [`SandboxRepo::update`]):
//! - a sandbox that is not `destroyed` holds the name lock of its name in its organization, taken
//!   in a transaction that also checks that the organization is live (not being deleted), so the
//!   organization's partition always shows its live sandboxes (`OrgRepo::delete` relies on it);
//! - `USAGE` is exact: the sums over the organization's sandboxes of what their states hold, see
//!   [`usage`] (also for what happens over quota);
//! - a runner's `assignedSandboxes` counts the sandboxes that name it in `runnerId` and are not
//!   `destroyed`.
//!
//! The list index (GSI1 `ORG#<orgId>#SANDBOXES` / `<createdAt>#<id>`) and the runner index
//! (GSI2 `RUNNER#<runnerId>` / `SANDBOX#<id>`) only carry sandboxes that are not destroyed; the
//! backup-removal index (GSI1 `SANDBOXBACKUPS#REMOVE` / `<id>`) only destroyed sandboxes whose
//! backups are still on a runner ([`SandboxRecord::has_backups_to_remove`]); the due-time index
//! (GSI3 `SANDBOXDUE#<shard>` / `<dueAt>#<id>`) the sandboxes the lifecycle sweep has something
//! to do with, and when ([`due`]).
//!
//! Every write that creates a sandbox or changes its `state` or `desiredState` also puts an
//! event into the organization's outbox `ORG#<orgId>#EVENTS` in the same transaction, read by
//! the real-time relay ([`events`]).
//!
//! Modules: [`record`] (the row), [`due`] (what the sweep does when), [`usage`] (the counters and the quota), `writes` (the
//! transactions), `queries` (reads), [`events`] (the outbox).

pub mod due;
pub mod events;
mod queries;
pub mod record;
pub mod usage;
mod writes;

use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId};

pub use events::{SandboxEventKind, SandboxEventRecord};
pub use record::{
    SandboxAction, SandboxRecord, SandboxVolume, Transition, generate_auth_token, observed_state,
};
pub use usage::{QuotaCheck, SandboxUsage, holds_compute, holds_disk};

use crate::Store;

/// Largest page [`SandboxRepo::list_by_org`] returns.
pub const MAX_PAGE: usize = 1000;

/// GSI1 partition of the destroyed sandboxes whose backups are still to be removed.
pub(crate) const BACKUP_REMOVAL_PK: &str = "SANDBOXBACKUPS#REMOVE";

/// Sort-key prefix of the sandbox name locks in an organization's partition.
pub(crate) const NAME_LOCK_PREFIX: &str = "SANDBOXNAME#";

pub struct SandboxRepo<'a> {
    pub(crate) store: &'a Store,
}

pub(crate) fn pk(id: &SandboxId) -> String {
    format!("SANDBOX#{id}")
}

fn name_sk(name: &str) -> String {
    format!("{NAME_LOCK_PREFIX}{name}")
}

fn list_pk(org: &OrganizationId) -> String {
    format!("ORG#{org}#SANDBOXES")
}

fn runner_pk(id: &RunnerId) -> String {
    crate::runners::pk(id)
}
