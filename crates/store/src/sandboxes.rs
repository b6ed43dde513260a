//! Sandboxes: the row `SANDBOX#<id>` / `#META`, the organization's name lock
//! `ORG#<orgId>` / `SANDBOXNAME#<name>`, the organization's usage counters `ORG#<orgId>` / `USAGE`,
//! and the runner's `assignedSandboxes` counter, all moved together in one transaction.
//!
//! Invariants the repository keeps (every write goes through [`SandboxRepo::create`] or
//! [`SandboxRepo::update`]):
//! - a sandbox that is not `destroyed` holds the name lock of its name in its organization;
//! - `USAGE.cpu`/`memory` are the sums over the organization's sandboxes in a compute state
//!   ([`consumes_compute`]), `USAGE.disk` over those in a disk state ([`consumes_disk`]) and a
//!   write that makes a total grow is conditional on staying within the organization's quota;
//! - a runner's `assignedSandboxes` counts the sandboxes that name it in `runnerId` and are not
//!   `destroyed`.
//!
//! The list index (GSI1 `ORG#<orgId>#SANDBOXES` / `<createdAt>#<id>`) and the runner index
//! (GSI2 `RUNNER#<runnerId>` / `SANDBOX#<id>`) only carry sandboxes that are not destroyed.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use crate::item::{Item, META, from_item, key, s, to_item};
use crate::orgs::OrgQuota;
use crate::table::{GSI1, GSI2};
use crate::{Cursor, Page, Store, StoreError};

/// The state string of a destroyed sandbox.
pub const DESTROYED: &str = "destroyed";

/// `op` of the [`StoreError::Conflict`] returned when the sandbox name is taken in the organization.
pub const NAME_TAKEN_OP: &str = "SandboxNameTaken";

/// `op` of the [`StoreError::NotFound`] returned when a sandbox is placed on a runner that does not exist.
pub const RUNNER_MISSING_OP: &str = "SandboxRunner";

/// `op` of the [`StoreError::NotFound`] returned when the organization is being deleted.
pub const ORG_MISSING_OP: &str = "SandboxOrganization";

/// Largest page [`SandboxRepo::list_by_org`] returns.
pub const MAX_PAGE: usize = 1000;

/// How often a transaction that lost a race with another one (`TransactionConflict`) is tried.
const MAX_ATTEMPTS: u32 = 12;

/// Whether a sandbox in `state` holds CPU and memory against the organization's quota (CONTRACT §8).
pub fn consumes_compute(state: &str) -> bool {
    matches!(
        state,
        "creating"
            | "restoring"
            | "started"
            | "starting"
            | "stopping"
            | "pending_build"
            | "building_snapshot"
            | "unknown"
            | "pulling_snapshot"
            | "forking"
            | "pausing"
            | "resuming"
    )
}

/// Whether a sandbox in `state` holds disk against the organization's quota (CONTRACT §8).
pub fn consumes_disk(state: &str) -> bool {
    consumes_compute(state)
        || matches!(
            state,
            "stopped" | "paused" | "archiving" | "resizing" | "snapshotting"
        )
}

/// A volume mounted into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxVolume {
    pub volume_id: String,
    pub mount_path: String,
    #[serde(default)]
    pub subpath: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// Image reference the runner runs.
    pub snapshot: String,
    /// OS user, default `daytona`.
    pub user: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub network_block_all: bool,
    #[serde(default)]
    pub network_allow_list: Option<String>,
    #[serde(default)]
    pub domain_allow_list: Option<String>,
    /// Region id, default `us`.
    pub target: String,
    pub cpu: i64,
    #[serde(default)]
    pub gpu: i64,
    /// GiB.
    pub memory: i64,
    /// GiB.
    pub disk: i64,
    /// Daytona `SandboxState` string (CONTRACT §4.1).
    pub state: String,
    /// Daytona `SandboxDesiredState` string.
    pub desired_state: String,
    #[serde(default)]
    pub pending: bool,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub recoverable: bool,
    /// `None` | `Pending` | `InProgress` | `Completed` | `Error`.
    pub backup_state: String,
    #[serde(default)]
    pub backup_snapshot: Option<String>,
    #[serde(default)]
    pub backup_created_at: Option<String>,
    pub auto_stop_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    #[serde(default)]
    pub auto_pause_interval: i64,
    #[serde(default)]
    pub volumes: Vec<SandboxVolume>,
    #[serde(default)]
    pub runner_id: Option<String>,
    /// Preview token (32 lowercase alphanumerics), see [`generate_auth_token`].
    pub auth_token: String,
    #[serde(default)]
    pub daemon_version: Option<String>,
    /// Last `SandboxSpec` generation sent to the runner.
    #[serde(default)]
    pub generation: u64,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    /// Optimistic concurrency; 0 before the first write.
    pub version: u64,
}

impl SandboxRecord {
    /// A sandbox in `creating` / desired `started` with Daytona's defaults (1 CPU, 1 GiB memory,
    /// 3 GiB disk, user `daytona`, region `us`, auto-stop 15 min, auto-archive 7 days, no
    /// auto-delete), no runner and an empty `auth_token` (set it with [`generate_auth_token`]).
    pub fn new(
        id: impl Into<String>,
        org_id: impl Into<String>,
        name: impl Into<String>,
        snapshot: impl Into<String>,
        now: &str,
    ) -> Self {
        Self {
            id: id.into(),
            org_id: org_id.into(),
            name: name.into(),
            snapshot: snapshot.into(),
            user: "daytona".into(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            public: false,
            network_block_all: false,
            network_allow_list: None,
            domain_allow_list: None,
            target: "us".into(),
            cpu: 1,
            gpu: 0,
            memory: 1,
            disk: 3,
            state: "creating".into(),
            desired_state: "started".into(),
            pending: false,
            error_reason: None,
            recoverable: false,
            backup_state: "None".into(),
            backup_snapshot: None,
            backup_created_at: None,
            auto_stop_interval: 15,
            auto_archive_interval: 10080,
            auto_delete_interval: -1,
            auto_pause_interval: 0,
            volumes: Vec::new(),
            runner_id: None,
            auth_token: String::new(),
            daemon_version: None,
            generation: 0,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            last_activity_at: now.to_owned(),
            version: 0,
        }
    }

    pub fn is_destroyed(&self) -> bool {
        self.state == DESTROYED
    }

    /// What this sandbox adds to its organization's usage counters in its current state.
    pub fn consumption(&self) -> SandboxUsage {
        let compute = consumes_compute(&self.state);
        SandboxUsage {
            cpu: if compute { self.cpu } else { 0 },
            memory: if compute { self.memory } else { 0 },
            disk: if consumes_disk(&self.state) {
                self.disk
            } else {
                0
            },
        }
    }

    /// The name lock this sandbox holds (none once destroyed).
    fn held_name(&self) -> Option<&str> {
        (!self.is_destroyed()).then_some(self.name.as_str())
    }

    /// The runner whose `assignedSandboxes` counts this sandbox.
    fn counted_runner(&self) -> Option<&str> {
        if self.is_destroyed() {
            None
        } else {
            self.runner_id.as_deref()
        }
    }
}

/// A fresh preview token: 32 characters of `[a-z0-9]` from the platform's secure random source.
pub fn generate_auth_token() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf)?;
        // 252 = 7 * 36: rejection sampling keeps the characters uniform.
        for b in buf.into_iter().filter(|b| *b < 252) {
            if out.len() == 32 {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 36)]));
        }
    }
    Ok(out)
}

/// An organization's usage counters (GiB for memory and disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxUsage {
    pub cpu: i64,
    pub memory: i64,
    pub disk: i64,
}

impl SandboxUsage {
    fn minus(self, o: SandboxUsage) -> SandboxUsage {
        SandboxUsage {
            cpu: self.cpu - o.cpu,
            memory: self.memory - o.memory,
            disk: self.disk - o.disk,
        }
    }
    fn is_zero(self) -> bool {
        self == SandboxUsage::default()
    }
    /// `(attribute, amount, quota total)` per resource.
    fn parts(self, quota: &OrgQuota) -> [(&'static str, i64, i64); 3] {
        [
            ("cpu", self.cpu, quota.total_cpu_quota),
            ("memory", self.memory, quota.total_memory_quota),
            ("disk", self.disk, quota.total_disk_quota),
        ]
    }
}

pub(crate) fn pk(id: &str) -> String {
    format!("SANDBOX#{id}")
}
fn org_pk(org: &str) -> String {
    format!("ORG#{org}")
}
fn name_sk(name: &str) -> String {
    format!("SANDBOXNAME#{name}")
}
const USAGE_SK: &str = "USAGE";
fn list_pk(org: &str) -> String {
    format!("ORG#{org}#SANDBOXES")
}
fn runner_pk(id: &str) -> String {
    format!("RUNNER#{id}")
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn builder_err(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        op,
        message: e.to_string(),
    }
}

fn item(op: &'static str, rec: &SandboxRecord) -> Result<Item, StoreError> {
    let mut keys = vec![("pk", pk(&rec.id)), ("sk", META.to_owned())];
    if !rec.is_destroyed() {
        keys.push(("gsi1pk", list_pk(&rec.org_id)));
        keys.push(("gsi1sk", format!("{}#{}", rec.created_at, rec.id)));
        if let Some(r) = &rec.runner_id {
            keys.push(("gsi2pk", runner_pk(r)));
            keys.push(("gsi2sk", pk(&rec.id)));
        }
    }
    to_item(op, rec, &keys)
}

/// What each item of a transaction is, to read its cancellation reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Sandbox,
    NameLock,
    NameRelease,
    OrgLive,
    Usage,
    RunnerInc,
    RunnerDec,
}

struct Tx {
    op: &'static str,
    items: Vec<(Role, TransactWriteItem)>,
    /// The usage change of the transaction (for telling which resource ran out).
    usage_delta: SandboxUsage,
    org: String,
    quota: OrgQuota,
}

pub struct SandboxRepo<'a> {
    pub(crate) store: &'a Store,
}

impl SandboxRepo<'_> {
    /// One transaction: put the sandbox (it must not exist), take its name lock (taken →
    /// `Conflict { op: NAME_TAKEN_OP }`), add its consumption to the organization's usage within
    /// `quota` (→ `QuotaExceeded`) and count it on its runner (missing runner →
    /// `NotFound { op: RUNNER_MISSING_OP }`). An organization whose `#META` row is marked
    /// `deleting` takes no new sandboxes (→ `NotFound { op: ORG_MISSING_OP }`). Returns the record as stored (version 1).
    pub async fn create(
        &self,
        rec: &SandboxRecord,
        quota: &OrgQuota,
    ) -> Result<SandboxRecord, StoreError> {
        const OP: &str = "CreateSandbox";
        let mut stored = rec.clone();
        stored.version = 1;
        let table = self.store.table();
        let mut items = Vec::with_capacity(4);
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item(OP, &stored)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| builder_err(OP, e))?;
        items.push((Role::Sandbox, TransactWriteItem::builder().put(put).build()));
        if let Some(name) = stored.held_name() {
            items.push((Role::NameLock, self.name_lock(OP, &stored, name)?));
        }
        items.push((Role::OrgLive, self.org_live(OP, &stored.org_id)?));
        let delta = stored.consumption();
        if let Some(u) = self.usage_update(OP, &stored.org_id, delta, quota)? {
            items.push((Role::Usage, u));
        }
        if let Some(r) = stored.counted_runner() {
            items.push((Role::RunnerInc, self.runner_add(OP, r, 1)?));
        }
        self.run(Tx {
            op: OP,
            items,
            usage_delta: delta,
            org: stored.org_id.clone(),
            quota: quota.clone(),
        })
        .await?;
        tracing::debug!(sandbox = %stored.id, org = %stored.org_id, "sandbox created");
        Ok(stored)
    }

    pub async fn get(&self, id: &str) -> Result<Option<SandboxRecord>, StoreError> {
        self.store.get_record("GetSandbox", key(pk(id), META)).await
    }

    /// The sandbox that holds `name` in the organization (destroyed sandboxes hold no name).
    pub async fn get_by_name(
        &self,
        org: &str,
        name: &str,
    ) -> Result<Option<SandboxRecord>, StoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Lock {
            sandbox_id: String,
        }
        let Some(lock) = self
            .store
            .get_record::<Lock>("GetSandboxName", key(org_pk(org), name_sk(name)))
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .get(&lock.sandbox_id)
            .await?
            .filter(|r| r.org_id == org && r.name == name && !r.is_destroyed()))
    }

    /// The organization's sandboxes, newest first, destroyed ones excluded; at most `limit`
    /// (1..=[`MAX_PAGE`]) per page, `next` set when there may be more.
    pub async fn list_by_org(
        &self,
        org: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<Page<SandboxRecord>, StoreError> {
        const OP: &str = "ListSandboxes";
        let limit = limit.clamp(1, MAX_PAGE);
        let gpk = list_pk(org);
        let mut start = match cursor {
            Some(c) => {
                let k = c.to_key()?;
                let ours = k.get("gsi1pk").and_then(|v| v.as_s().ok()) == Some(&gpk)
                    && k.contains_key("gsi1sk");
                if !ours {
                    return Err(StoreError::InvalidCursor);
                }
                Some(k)
            }
            None => None,
        };
        let mut items = Vec::with_capacity(limit);
        loop {
            let want = i32::try_from(limit - items.len()).unwrap_or(i32::MAX);
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :pk")
                .filter_expression("#st <> :destroyed")
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":pk", s(gpk.clone()))
                .expression_attribute_values(":destroyed", s(DESTROYED))
                .scan_index_forward(false)
                .limit(want)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend(OP, e))?;
            for i in page.items.unwrap_or_default() {
                items.push(from_item(OP, i)?);
            }
            let last = page.last_evaluated_key.filter(|k| !k.is_empty());
            match last {
                Some(k) if items.len() < limit => start = Some(k),
                Some(k) => {
                    return Ok(Page {
                        items,
                        next: Some(Cursor::from_key(&k)),
                    });
                }
                None => return Ok(Page { items, next: None }),
            }
        }
    }

    /// Every sandbox placed on the runner that is not destroyed.
    pub async fn list_by_runner(&self, runner_id: &str) -> Result<Vec<SandboxRecord>, StoreError> {
        const OP: &str = "ListRunnerSandboxes";
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .index_name(GSI2)
                .key_condition_expression("gsi2pk = :pk AND begins_with(gsi2sk, :p)")
                .expression_attribute_values(":pk", s(runner_pk(runner_id)))
                .expression_attribute_values(":p", s("SANDBOX#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend(OP, e))?;
            for i in page.items.unwrap_or_default() {
                let rec: SandboxRecord = from_item(OP, i)?;
                if !rec.is_destroyed() {
                    out.push(rec);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Replaces `prev` (still at `prev.version`, else `Conflict`) by `next`, in one transaction that
    /// also moves the usage counters by the difference of consumption (checked against `quota`
    /// only for the resources that grow → `QuotaExceeded`), moves the name lock when the name
    /// changes or the sandbox is destroyed (a taken name → `Conflict { op: NAME_TAKEN_OP }`) and
    /// moves the runner count when the runner changes or the sandbox is destroyed.
    /// Returns `next` as stored, with `version = prev.version + 1`.
    pub async fn update(
        &self,
        prev: &SandboxRecord,
        next: &SandboxRecord,
        quota: &OrgQuota,
    ) -> Result<SandboxRecord, StoreError> {
        const OP: &str = "UpdateSandbox";
        if prev.id != next.id || prev.org_id != next.org_id {
            return Err(StoreError::Backend {
                op: OP,
                message: "a sandbox's id and organization can't change".into(),
            });
        }
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let table = self.store.table();
        let mut items = Vec::with_capacity(6);
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item(OP, &stored)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(prev.version))
            .build()
            .map_err(|e| builder_err(OP, e))?;
        items.push((Role::Sandbox, TransactWriteItem::builder().put(put).build()));
        if prev.held_name() != stored.held_name() {
            if let Some(old) = prev.held_name() {
                let del = Delete::builder()
                    .table_name(table)
                    .set_key(Some(key(org_pk(&prev.org_id), name_sk(old))))
                    .condition_expression("attribute_not_exists(pk) OR sandboxId = :id")
                    .expression_attribute_values(":id", s(prev.id.clone()))
                    .build()
                    .map_err(|e| builder_err(OP, e))?;
                items.push((
                    Role::NameRelease,
                    TransactWriteItem::builder().delete(del).build(),
                ));
            }
            if let Some(new) = stored.held_name() {
                items.push((Role::NameLock, self.name_lock(OP, &stored, new)?));
                items.push((Role::OrgLive, self.org_live(OP, &stored.org_id)?));
            }
        }
        let delta = stored.consumption().minus(prev.consumption());
        if let Some(u) = self.usage_update(OP, &stored.org_id, delta, quota)? {
            items.push((Role::Usage, u));
        }
        if prev.counted_runner() != stored.counted_runner() {
            if let Some(r) = prev.counted_runner() {
                items.push((Role::RunnerDec, self.runner_add(OP, r, -1)?));
            }
            if let Some(r) = stored.counted_runner() {
                items.push((Role::RunnerInc, self.runner_add(OP, r, 1)?));
            }
        }
        self.run(Tx {
            op: OP,
            items,
            usage_delta: delta,
            org: stored.org_id.clone(),
            quota: quota.clone(),
        })
        .await?;
        Ok(stored)
    }

    /// Sets `lastActivityAt = now` when the stored value is older than `older_than` (and than
    /// `now`): one conditional `UpdateItem`, a no-op otherwise (also when the sandbox is gone).
    /// Does not bump `version`, so it never makes a concurrent [`Self::update`] fail.
    pub async fn touch_activity(
        &self,
        id: &str,
        now: &str,
        older_than: &str,
    ) -> Result<(), StoreError> {
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET lastActivityAt = :now")
            .condition_expression(
                "attribute_exists(pk) AND lastActivityAt < :older AND lastActivityAt < :now",
            )
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":older", s(older_than))
            .send()
            .await
            .map_err(|e| StoreError::backend("TouchSandboxActivity", e));
        match res {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The organization's usage counters (zero when it never had a sandbox).
    pub async fn usage(&self, org: &str) -> Result<SandboxUsage, StoreError> {
        Ok(self
            .store
            .get_record::<SandboxUsage>("GetSandboxUsage", key(org_pk(org), USAGE_SK))
            .await?
            .unwrap_or_default())
    }

    /// The organization is not being deleted (its `#META` row carries `deleting` while
    /// `OrgRepo::delete` empties the partition): writes adding a row to the partition check it.
    /// A missing `#META` row passes: the caller has read the organization (for its quota) already,
    /// and tests of other repositories place sandboxes in organizations without rows.
    fn org_live(&self, op: &'static str, org: &str) -> Result<TransactWriteItem, StoreError> {
        let c = ConditionCheck::builder()
            .table_name(self.store.table())
            .set_key(Some(key(org_pk(org), META)))
            .condition_expression("attribute_not_exists(deleting) OR deleting = :f")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .build()
            .map_err(|e| builder_err(op, e))?;
        Ok(TransactWriteItem::builder().condition_check(c).build())
    }

    fn name_lock(
        &self,
        op: &'static str,
        rec: &SandboxRecord,
        name: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut lock = key(org_pk(&rec.org_id), name_sk(name));
        lock.insert("sandboxId".into(), s(rec.id.clone()));
        let put = Put::builder()
            .table_name(self.store.table())
            .set_item(Some(lock))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| builder_err(op, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// `ADD` of the nonzero parts of `delta` to the organization's `USAGE` row; every growing
    /// total is conditional on `total <= quota - amount` (DynamoDB conditions can't add).
    fn usage_update(
        &self,
        op: &'static str,
        org: &str,
        delta: SandboxUsage,
        quota: &OrgQuota,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        if delta.is_zero() {
            return Ok(None);
        }
        let mut adds = Vec::new();
        let mut conds = Vec::new();
        let mut b = Update::builder()
            .table_name(self.store.table())
            .set_key(Some(key(org_pk(org), USAGE_SK)));
        for (attr, amount, limit) in delta.parts(quota) {
            if amount == 0 {
                continue;
            }
            adds.push(format!("#{attr} :{attr}"));
            b = b
                .expression_attribute_names(format!("#{attr}"), attr)
                .expression_attribute_values(format!(":{attr}"), n(amount));
            if amount > 0 {
                let max = limit.saturating_sub(amount);
                if max < 0 {
                    return Err(StoreError::QuotaExceeded {
                        resource: attr,
                        limit,
                    });
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
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        let u = b.build().map_err(|e| builder_err(op, e))?;
        Ok(Some(TransactWriteItem::builder().update(u).build()))
    }

    fn runner_add(
        &self,
        op: &'static str,
        runner: &str,
        by: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let u = Update::builder()
            .table_name(self.store.table())
            .set_key(Some(key(runner_pk(runner), META)))
            .update_expression("ADD assignedSandboxes :by")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":by", n(by))
            .build()
            .map_err(|e| builder_err(op, e))?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    /// Runs the transaction, retrying (with jittered backoff) when it lost a race with another
    /// transaction, and turns a cancellation into the error of the item that failed.
    async fn run(&self, mut tx: Tx) -> Result<(), StoreError> {
        // Only the sandbox row changes (the common state report): a conditional PutItem costs
        // half a transaction.
        if let [(Role::Sandbox, only)] = tx.items.as_slice()
            && let Some(p) = only.put()
        {
            self.store
                .client()
                .put_item()
                .table_name(p.table_name())
                .set_item(Some(p.item().clone()))
                .set_condition_expression(p.condition_expression().map(str::to_owned))
                .set_expression_attribute_values(p.expression_attribute_values().cloned())
                .send()
                .await
                .map_err(|e| StoreError::backend(tx.op, e))?;
            return Ok(());
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = self
                .store
                .client()
                .transact_write_items()
                .set_transact_items(Some(tx.items.iter().map(|(_, i)| i.clone()).collect()))
                .send()
                .await;
            let err = match res {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons = match &err {
                SdkError::ServiceError(se) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(c.cancellation_reasons().to_vec())
                    }
                    _ => None,
                },
                _ => None,
            };
            let Some(reasons) = reasons else {
                return Err(StoreError::backend(tx.op, err));
            };
            match self.classify(&tx, &reasons).await? {
                Outcome::Fail(e) => return Err(e),
                Outcome::DropRunnerDec => {
                    // The runner row is gone: nothing left to count on.
                    tx.items.retain(|(r, _)| *r != Role::RunnerDec);
                }
                Outcome::Retry => {
                    if attempt >= MAX_ATTEMPTS {
                        tracing::warn!(op = tx.op, attempt, "transaction kept conflicting");
                        return Err(StoreError::Conflict { op: tx.op });
                    }
                    tracing::debug!(op = tx.op, attempt, "transaction conflict; retrying");
                    backoff(attempt).await;
                }
            }
        }
    }

    async fn classify(
        &self,
        tx: &Tx,
        reasons: &[CancellationReason],
    ) -> Result<Outcome, StoreError> {
        let failed = |role: Role| {
            tx.items
                .iter()
                .zip(reasons)
                .find(|((r, _), reason)| {
                    *r == role && reason.code() == Some("ConditionalCheckFailed")
                })
                .map(|(_, reason)| reason)
        };
        if failed(Role::Sandbox).is_some() {
            return Ok(Outcome::Fail(StoreError::Conflict { op: tx.op }));
        }
        if failed(Role::NameLock).is_some() {
            return Ok(Outcome::Fail(StoreError::Conflict { op: NAME_TAKEN_OP }));
        }
        if failed(Role::OrgLive).is_some() {
            return Ok(Outcome::Fail(StoreError::NotFound { op: ORG_MISSING_OP }));
        }
        if failed(Role::NameRelease).is_some() {
            // The old name is held by another sandbox: the record we were given is not what is stored.
            return Ok(Outcome::Fail(StoreError::Conflict { op: tx.op }));
        }
        if let Some(reason) = failed(Role::Usage) {
            let current = match reason.item() {
                Some(i) if !i.is_empty() => from_item::<SandboxUsage>(tx.op, i.clone())?,
                _ => self.usage(&tx.org).await?,
            };
            return Ok(Self::quota_outcome(tx, current));
        }
        if failed(Role::RunnerInc).is_some() {
            return Ok(Outcome::Fail(StoreError::NotFound {
                op: RUNNER_MISSING_OP,
            }));
        }
        if failed(Role::RunnerDec).is_some() {
            return Ok(Outcome::DropRunnerDec);
        }
        if reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("TransactionConflict")
                    | Some("ThrottlingError")
                    | Some("ProvisionedThroughputExceeded")
            )
        }) {
            return Ok(Outcome::Retry);
        }
        let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
        Ok(Outcome::Fail(StoreError::Backend {
            op: tx.op,
            message: format!("transaction cancelled: {codes:?}"),
        }))
    }

    /// Which resource would go over quota given the `current` totals; a retry when none would
    /// (the totals moved between the write and the read).
    fn quota_outcome(tx: &Tx, current: SandboxUsage) -> Outcome {
        let quota = &tx.quota;
        for ((attr, amount, limit), (_, now, _)) in tx
            .usage_delta
            .parts(quota)
            .into_iter()
            .zip(current.parts(quota))
        {
            if amount > 0 && now + amount > limit {
                return Outcome::Fail(StoreError::QuotaExceeded {
                    resource: attr,
                    limit,
                });
            }
        }
        Outcome::Retry
    }
}

enum Outcome {
    Fail(StoreError),
    Retry,
    DropRunnerDec,
}

/// Sleeps a random time in `[0, min(10 ms · 2^attempt, 640 ms))` (full jitter).
async fn backoff(attempt: u32) {
    let cap_ms = (10u64 << attempt.min(6)).min(640);
    let mut b = [0u8; 8];
    let r = getrandom::fill(&mut b).map_or(cap_ms / 2, |()| u64::from_le_bytes(b) % cap_ms);
    sleep(Duration::from_millis(r.max(1))).await;
}

#[cfg(not(target_arch = "wasm32"))]
async fn sleep(d: Duration) {
    use aws_smithy_async::rt::sleep::AsyncSleep as _;
    if let Some(s) = aws_smithy_async::rt::sleep::default_async_sleep() {
        s.sleep(d).await;
    }
}

#[cfg(target_arch = "wasm32")]
async fn sleep(d: Duration) {
    use aws_smithy_async::rt::sleep::AsyncSleep as _;
    crate::spin_http::Sleep.sleep(d).await;
}
