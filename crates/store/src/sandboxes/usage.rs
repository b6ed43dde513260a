//! An organization's usage counters, `ORG#<orgId>` / `USAGE` (attributes `cpu`, `memory`, `disk`),
//! and how a write's change of them meets the quota.
//!
//! # Exactness
//!
//! The counters always equal the sum, over the organization's sandboxes, of what each one's state
//! holds (CONTRACT §8: [`holds_compute`] states hold CPU, memory and disk, [`holds_disk`] states
//! disk only, the others nothing), whoever changes the state: every write of a sandbox row
//! ([`super::SandboxRepo::create`], [`super::SandboxRepo::update`]) moves the counters by the
//! difference in one transaction with the row, and that row write is conditional on the stored
//! row still being the `prev` the difference was computed from (its version, state and sizes).
//!
//! # Over quota
//!
//! What a write may do to the totals depends on who asks ([`QuotaCheck`]):
//! - a **user action** ([`QuotaCheck::Enforce`]: create, start, restore, ...) is refused with
//!   `QuotaExceeded` when a total it makes grow would end above the quota, in particular while that
//!   total is over the quota already; actions that keep or shrink usage (stop, archive, delete)
//!   always pass, so an organization over its quota can always get back under it;
//! - a state the control plane **records** rather than decides ([`QuotaCheck::Record`]: a runner's
//!   state report, a lifecycle sweep's finding, the settle of an action already admitted) is
//!   written whatever the quota: the counters follow reality and may then exceed the quota, which
//!   only refuses the organization's next growing user action.

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use cove_api_types::ids::OrganizationId;
use cove_api_types::sandbox::SandboxState;
use serde::{Deserialize, Serialize};

use super::record::SandboxRecord;
use crate::item::{key, n};
use crate::orgs::OrgQuota;
use crate::tx;
use crate::{Resource, Store, StoreError};

/// The sort key of the usage row in the organization's partition.
pub(crate) const USAGE_SK: &str = "USAGE";

/// Whether a sandbox in `state` holds CPU and memory (and disk) against the quota (CONTRACT §8).
pub fn holds_compute(state: SandboxState) -> bool {
    use SandboxState as S;
    matches!(
        state,
        S::Creating
            | S::Restoring
            | S::Started
            | S::Starting
            | S::Stopping
            | S::PendingBuild
            | S::BuildingSnapshot
            | S::Unknown
            | S::PullingSnapshot
            | S::Forking
            | S::Pausing
            | S::Resuming
    )
}

/// Whether a sandbox in `state` holds disk against the quota (CONTRACT §8).
pub fn holds_disk(state: SandboxState) -> bool {
    use SandboxState as S;
    holds_compute(state)
        || matches!(
            state,
            S::Stopped | S::Paused | S::Archiving | S::Resizing | S::Snapshotting
        )
}

/// An organization's usage counters, or one sandbox's share of them (GiB for memory and disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxUsage {
    pub cpu: i64,
    pub memory: i64,
    pub disk: i64,
}

impl SandboxUsage {
    /// What `rec` holds in its current state.
    pub fn of(rec: &SandboxRecord) -> Self {
        let compute = holds_compute(rec.state);
        SandboxUsage {
            cpu: if compute { rec.cpu } else { 0 },
            memory: if compute { rec.memory } else { 0 },
            disk: if holds_disk(rec.state) { rec.disk } else { 0 },
        }
    }

    pub fn plus(self, o: SandboxUsage) -> SandboxUsage {
        SandboxUsage {
            cpu: self.cpu + o.cpu,
            memory: self.memory + o.memory,
            disk: self.disk + o.disk,
        }
    }

    pub fn minus(self, o: SandboxUsage) -> SandboxUsage {
        SandboxUsage {
            cpu: self.cpu - o.cpu,
            memory: self.memory - o.memory,
            disk: self.disk - o.disk,
        }
    }

    pub fn is_zero(self) -> bool {
        self == SandboxUsage::default()
    }

    /// `(resource, amount, quota total)` per resource.
    fn parts(self, quota: &OrgQuota) -> [(Resource, i64, i64); 3] {
        [
            (Resource::Cpu, self.cpu, quota.total_cpu_quota),
            (Resource::Memory, self.memory, quota.total_memory_quota),
            (Resource::Disk, self.disk, quota.total_disk_quota),
        ]
    }
}

/// How a write's change of the usage counters meets the organization's quota (see the module
/// docs).
#[derive(Debug, Clone, Copy)]
pub enum QuotaCheck<'a> {
    /// A user action: every total it makes grow must stay within this quota.
    Enforce(&'a OrgQuota),
    /// A state the control plane records: the counters follow it whatever the quota.
    Record,
}

/// `ADD` of the nonzero parts of `delta` to the organization's `USAGE` row. Enforced, every growing
/// total is conditional on `total <= quota - amount` (DynamoDB conditions can't add), and a
/// refusal returns the row as stored (to tell which resource ran out).
pub(crate) fn usage_update(
    store: &Store,
    op: &'static str,
    org: &OrganizationId,
    delta: SandboxUsage,
    check: QuotaCheck<'_>,
) -> Result<Option<TransactWriteItem>, StoreError> {
    if delta.is_zero() {
        return Ok(None);
    }
    let mut adds = Vec::new();
    let mut conds = Vec::new();
    let mut b = Update::builder()
        .table_name(store.table())
        .set_key(Some(key(crate::orgs::pk(org), USAGE_SK)));
    let quota = match check {
        QuotaCheck::Enforce(q) => q.clone(),
        QuotaCheck::Record => OrgQuota::default(),
    };
    for (resource, amount, limit) in delta.parts(&quota) {
        if amount == 0 {
            continue;
        }
        let attr = resource.attribute();
        adds.push(format!("#{attr} :{attr}"));
        b = b
            .expression_attribute_names(format!("#{attr}"), attr)
            .expression_attribute_values(format!(":{attr}"), n(amount));
        if amount > 0 && matches!(check, QuotaCheck::Enforce(_)) {
            let max = limit.saturating_sub(amount);
            if max < 0 {
                return Err(StoreError::QuotaExceeded { resource, limit });
            }
            conds.push(format!(
                "(attribute_not_exists(#{attr}) OR #{attr} <= :{attr}Max)"
            ));
            b = b.expression_attribute_values(format!(":{attr}Max"), n(max));
        }
    }
    b = b.update_expression(format!("ADD {}", adds.join(", ")));
    if !conds.is_empty() {
        b = b
            .condition_expression(conds.join(" AND "))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    }
    let u = b.build().map_err(|e| StoreError::builder(op, e))?;
    Ok(Some(tx::update(u)))
}

/// The `QuotaExceeded` of the first resource `delta` would take over `quota` given the `current`
/// totals; `None` when none would (the totals moved since: try again).
pub(crate) fn exceeded(
    delta: SandboxUsage,
    current: SandboxUsage,
    quota: &OrgQuota,
) -> Option<StoreError> {
    delta
        .parts(quota)
        .into_iter()
        .zip(current.parts(quota))
        .find(|((_, amount, limit), (_, now, _))| *amount > 0 && now + amount > *limit)
        .map(|((resource, _, limit), _)| StoreError::QuotaExceeded { resource, limit })
}
