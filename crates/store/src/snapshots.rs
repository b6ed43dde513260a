//! Snapshots: the row `SNAPSHOT#<id>` / `#META` and its name lock `ORG#<orgId>` /
//! `SNAPSHOTNAME#<name>` (attr `snapshotId`), written and deleted together.
//!
//! Indexes (both sparse):
//! - GSI1 `ORG#<orgId>#SNAPSHOTS` / `<createdAt>#<id>` (a general snapshot: `GENERAL#SNAPSHOTS`
//!   instead): the listings;
//! - GSI2 `SNAPSHOTS#<state>` / `<transitionAt>#<id>`, only in the states the lifecycle sweep
//!   drives (`pending`, `pulling`, `building`, `removing`) and in `active` (propagation to other
//!   runners): [`SnapshotRepo::list_in_state`], oldest transition first, without a scan.
//!
//! Every state change is a conditional write on `version` ([`SnapshotRepo::set_state`],
//! [`SnapshotRepo::update`]); `transitionAt` is when the current state began.
//! The name lock lives in the organization's partition and is taken with the organization's
//! `live_check`, so organization deletion sees (and purges) the organization's snapshots.

use cove_api_types::ids::{OrganizationId, RunnerId, SnapshotId};
use cove_api_types::snapshots::SnapshotState;
use serde::{Deserialize, Serialize};

use crate::item::{Item, META, key, n, s, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

/// GSI1 partition of the general snapshots (visible to every organization).
pub const GENERAL_LIST_PK: &str = "GENERAL#SNAPSHOTS";

/// Sort-key prefix of the snapshot name locks in an organization's partition.
pub(crate) const NAME_LOCK_PREFIX: &str = "SNAPSHOTNAME#";

/// The states whose snapshots are in the state index (GSI2).
pub const INDEXED_STATES: &[SnapshotState] = &[
    SnapshotState::Pending,
    SnapshotState::Pulling,
    SnapshotState::Building,
    SnapshotState::Removing,
    SnapshotState::Active,
];

/// How the image of a snapshot comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotJob {
    /// Pulled from a registry (`imageName`).
    Pull,
    /// Built from a Dockerfile and S3 contexts (`buildInfo`).
    Build,
}

/// The declarative build of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotBuildInfo {
    pub dockerfile_content: String,
    #[serde(default)]
    pub context_hashes: Vec<String>,
    /// `cove_runner_api::build_ref(..)`: content-addressed, so an identical build is reused.
    pub snapshot_ref: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    pub id: SnapshotId,
    pub org_id: OrganizationId,
    /// Visible to every organization.
    #[serde(default)]
    pub general: bool,
    pub name: String,
    /// What the user asked for (`imageName`), or the build's ref for a build.
    pub image_name: String,
    pub state: SnapshotState,
    pub job: SnapshotJob,
    /// Image size reported by the runner.
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    pub cpu: i64,
    #[serde(default)]
    pub gpu: i64,
    /// GB.
    pub mem: i64,
    /// GB.
    pub disk: i64,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub build_info: Option<SnapshotBuildInfo>,
    #[serde(default)]
    pub region_ids: Vec<String>,
    /// The runner that pulled or built it first (whose logs `build-logs` shows).
    #[serde(default)]
    pub initial_runner_id: Option<RunnerId>,
    /// The image ref sandboxes run: the internal registry's once pushed (a build's is known at
    /// create: its content address).
    #[serde(default, rename = "ref")]
    pub r#ref: Option<String>,
    pub sandbox_class: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// When the current state began (RFC 3339): the sweep's deadlines count from it.
    pub transition_at: String,
    /// Optimistic concurrency; 0 before the first write.
    pub version: u64,
}

impl SnapshotRecord {
    /// A new `pending` snapshot with Daytona's defaults (1 CPU, 1 GB memory, 3 GB disk, region
    /// `us`, class `container`).
    pub fn new(
        org_id: OrganizationId,
        name: impl Into<String>,
        image_name: impl Into<String>,
        job: SnapshotJob,
        now: &str,
    ) -> Self {
        Self {
            id: SnapshotId::new_random(),
            org_id,
            general: false,
            name: name.into(),
            image_name: image_name.into(),
            state: SnapshotState::Pending,
            job,
            size_bytes: None,
            entrypoint: None,
            cmd: None,
            cpu: 1,
            gpu: 0,
            mem: 1,
            disk: 3,
            error_reason: None,
            build_info: None,
            region_ids: vec![crate::runners::DEFAULT_REGION.to_owned()],
            initial_runner_id: None,
            r#ref: None,
            sandbox_class: "container".to_owned(),
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            last_used_at: None,
            transition_at: now.to_owned(),
            version: 0,
        }
    }
}

/// What a state change may also set ([`SnapshotRepo::set_state`]); `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotPatch {
    /// Set with the new state; a state other than `error`/`build_failed` clears the reason
    /// unless one is given.
    pub error_reason: Option<String>,
    pub r#ref: Option<String>,
    pub size_bytes: Option<u64>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub initial_runner_id: Option<RunnerId>,
}

impl SnapshotPatch {
    fn apply(self, rec: &mut SnapshotRecord, state: SnapshotState) {
        let failed = matches!(state, SnapshotState::Error | SnapshotState::BuildFailed);
        if self.error_reason.is_some() || !failed {
            rec.error_reason = self.error_reason;
        }
        if let Some(r) = self.r#ref {
            rec.r#ref = Some(r);
        }
        if let Some(v) = self.size_bytes {
            rec.size_bytes = Some(v);
        }
        if let Some(v) = self.entrypoint {
            rec.entrypoint = Some(v);
        }
        if let Some(v) = self.cmd {
            rec.cmd = Some(v);
        }
        if let Some(v) = self.initial_runner_id {
            rec.initial_runner_id = Some(v);
        }
    }
}

pub struct SnapshotRepo<'a> {
    pub(crate) store: &'a Store,
}

pub(crate) fn pk(id: &SnapshotId) -> String {
    format!("SNAPSHOT#{id}")
}

fn name_sk(name: &str) -> String {
    format!("{NAME_LOCK_PREFIX}{name}")
}

fn list_pk(org: &OrganizationId) -> String {
    format!("ORG#{org}#SNAPSHOTS")
}

fn state_pk(state: SnapshotState) -> String {
    format!("SNAPSHOTS#{}", state.as_str())
}

/// The row with its index keys.
fn item(op: &'static str, rec: &SnapshotRecord) -> Result<Item, StoreError> {
    let list = if rec.general {
        GENERAL_LIST_PK.to_owned()
    } else {
        list_pk(&rec.org_id)
    };
    let mut keys = vec![
        ("pk", pk(&rec.id)),
        ("sk", META.to_owned()),
        ("gsi1pk", list),
        ("gsi1sk", format!("{}#{}", rec.created_at, rec.id)),
    ];
    if INDEXED_STATES.contains(&rec.state) {
        keys.push(("gsi2pk", state_pk(rec.state)));
        keys.push(("gsi2sk", format!("{}#{}", rec.transition_at, rec.id)));
    }
    to_item(op, rec, &keys)
}

fn name_lock(rec: &SnapshotRecord) -> Item {
    let mut lock = key(crate::orgs::pk(&rec.org_id), name_sk(&rec.name));
    lock.insert("snapshotId".into(), s(rec.id.to_string()));
    lock
}

fn at_version(v: u64) -> Cond {
    Cond::new("attribute_exists(pk) AND version = :v").value(":v", n(v))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lock {
    snapshot_id: SnapshotId,
}

impl SnapshotRepo<'_> {
    /// Writes a new snapshot (version 1) with its name lock, in one transaction that also needs
    /// the organization live: `Conflict { Exists }` when the name is taken in the organization
    /// (or the id exists), `Conflict { OrganizationDeleting }` when it is gone or being deleted.
    pub async fn create(&self, rec: &SnapshotRecord) -> Result<SnapshotRecord, StoreError> {
        const OP: &str = "CreateSnapshot";
        let mut stored = rec.clone();
        stored.version = 1;
        self.store
            .put_new_in_org(
                OP,
                &stored.org_id,
                vec![item(OP, &stored)?, name_lock(&stored)],
            )
            .await?;
        tracing::debug!(snapshot = %stored.id, org = %stored.org_id, "snapshot created");
        Ok(stored)
    }

    pub async fn get(&self, id: &SnapshotId) -> Result<Option<SnapshotRecord>, StoreError> {
        self.store
            .get_record("GetSnapshot", key(pk(id), META))
            .await
    }

    /// The organization's own snapshot named `name` (strongly consistent, through its lock).
    pub async fn get_by_name(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        let lock_key = key(crate::orgs::pk(org), name_sk(name));
        let Some(lock) = self
            .store
            .get_record::<Lock>("GetSnapshotName", lock_key)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .get(&lock.snapshot_id)
            .await?
            .filter(|r| r.org_id == *org && r.name == name))
    }

    /// A snapshot the organization may see and use: its own by id, or a general one by id; its
    /// own by name; else a general one by name.
    pub async fn find_visible(
        &self,
        org: &OrganizationId,
        id_or_name: &str,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        if let Ok(id) = SnapshotId::parse(id_or_name)
            && let Some(rec) = self.get(&id).await?
            && (rec.org_id == *org || rec.general)
        {
            return Ok(Some(rec));
        }
        if let Some(rec) = self.get_by_name(org, id_or_name).await? {
            return Ok(Some(rec));
        }
        Ok(self
            .list_general()
            .await?
            .into_iter()
            .find(|r| r.name == id_or_name))
    }

    /// The organization's own snapshots (not the general ones), oldest first (GSI1).
    pub async fn list_by_org(
        &self,
        org: &OrganizationId,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.store
            .query_all("ListSnapshots", &Query::gsi1(list_pk(org)))
            .await
    }

    /// The general snapshots, oldest first (GSI1).
    pub async fn list_general(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.store
            .query_all("ListGeneralSnapshots", &Query::gsi1(GENERAL_LIST_PK))
            .await
    }

    /// How many of the organization's snapshots count against its quota (states `building`,
    /// `pending`, `pulling`, `active`), general ones included: its name locks, read strongly
    /// consistently, then their rows.
    pub async fn count_usage(&self, org: &OrganizationId) -> Result<i64, StoreError> {
        let q = Query::prefix(crate::orgs::pk(org), NAME_LOCK_PREFIX);
        let locks: Vec<Lock> = self.store.query_all("ListSnapshotNames", &q).await?;
        let mut count = 0;
        for lock in locks {
            if self
                .get(&lock.snapshot_id)
                .await?
                .is_some_and(|r| r.state.counts_against_quota())
            {
                count += 1;
            }
        }
        Ok(count)
    }

    /// At most `limit` snapshots in `state` (one of [`INDEXED_STATES`], else empty), the oldest
    /// `transitionAt` first (GSI2, eventually consistent on AWS: act with [`Self::set_state`]'s
    /// version check).
    pub async fn list_in_state(
        &self,
        state: SnapshotState,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        const OP: &str = "ListSnapshotsInState";
        if !INDEXED_STATES.contains(&state) || limit == 0 {
            return Ok(Vec::new());
        }
        let q = Query::gsi2(state_pk(state));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = self.store.query_page(OP, &q, Some(want), start).await?;
            for i in page.items {
                out.push(crate::item::from_item::<SnapshotRecord>(OP, i)?);
            }
            match page.next {
                Some(k) if out.len() < limit => start = Some(k),
                _ => return Ok(out.into_iter().filter(|r| r.state == state).collect()),
            }
        }
    }

    /// The organization's `active` snapshot whose image is `image_ref` (content-addressed reuse
    /// of an identical build).
    pub async fn find_active_by_ref(
        &self,
        org: &OrganizationId,
        image_ref: &str,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        Ok(self
            .list_by_org(org)
            .await?
            .into_iter()
            .find(|r| r.state == SnapshotState::Active && r.r#ref.as_deref() == Some(image_ref)))
    }

    /// Moves snapshot `id`, still at `from_version`, to `new_state` with `patch`
    /// (`transitionAt` = now when the state changes, `updatedAt` = now, version + 1).
    /// `NotFound` if it is gone, `Conflict { Changed }` if its version moved.
    pub async fn set_state(
        &self,
        id: &SnapshotId,
        from_version: u64,
        new_state: SnapshotState,
        patch: SnapshotPatch,
    ) -> Result<SnapshotRecord, StoreError> {
        const OP: &str = "SetSnapshotState";
        let Some(prev) = self.get(id).await? else {
            return Err(StoreError::not_found(OP, Entity::Snapshot));
        };
        if prev.version != from_version {
            return Err(StoreError::conflict(OP, Conflict::Changed));
        }
        let mut next = prev.clone();
        let now = cove_api_types::time::now_rfc3339();
        if next.state != new_state {
            next.transition_at.clone_from(&now);
        }
        next.state = new_state;
        patch.apply(&mut next, new_state);
        next.updated_at = now;
        self.update(&prev, &next).await
    }

    /// Replaces `prev` by `next` (same id, organization and name; the row must still be at
    /// `prev.version`: `Conflict { Changed }` otherwise). Returns `next` as stored
    /// (`version = prev.version + 1`).
    pub async fn update(
        &self,
        prev: &SnapshotRecord,
        next: &SnapshotRecord,
    ) -> Result<SnapshotRecord, StoreError> {
        const OP: &str = "UpdateSnapshot";
        if prev.id != next.id || prev.org_id != next.org_id || prev.name != next.name {
            return Err(StoreError::builder(
                OP,
                "a snapshot's id, organization and name can't change",
            ));
        }
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        Tx::new(OP)
            .with(
                Fail::Conflict(Conflict::Changed),
                tx::put(self.store, OP, item(OP, &stored)?, at_version(prev.version))?,
            )
            .commit(self.store)
            .await?;
        Ok(stored)
    }

    /// Sets `lastUsedAt = now` (no version bump, so it never makes a state change fail; a no-op
    /// when the snapshot is gone).
    pub async fn touch_last_used(&self, id: &SnapshotId, now: &str) -> Result<(), StoreError> {
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(now))
            .send()
            .await
            .map_err(|e| StoreError::backend("TouchSnapshotLastUsed", e));
        match res {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the row and its name lock in one transaction. `NotFound` if the row is gone.
    pub async fn delete(&self, id: &SnapshotId) -> Result<(), StoreError> {
        const OP: &str = "DeleteSnapshot";
        let missing = Fail::NotFound(Entity::Snapshot);
        let Some(rec) = self.get(id).await? else {
            return Err(missing.into_error(OP));
        };
        let lock = key(crate::orgs::pk(&rec.org_id), name_sk(&rec.name));
        let mine = Cond::new("attribute_not_exists(pk) OR snapshotId = :id")
            .value(":id", s(id.to_string()));
        Tx::new(OP)
            .with(
                missing,
                tx::delete(self.store, OP, key(pk(id), META), Some(Cond::present()))?,
            )
            .with(
                Fail::Conflict(Conflict::Changed),
                tx::delete(self.store, OP, lock, Some(mine))?,
            )
            .commit(self.store)
            .await?;
        tracing::debug!(snapshot = %id, org = %rec.org_id, "snapshot deleted");
        Ok(())
    }
}

/// The `SNAPSHOT#<id>` row a name lock item names (organization purge).
pub(crate) fn row_of_lock(lock: &Item) -> Option<Item> {
    let id = crate::item::get_s(lock, "snapshotId")?;
    Some(key(format!("SNAPSHOT#{id}"), META))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: SnapshotState) -> SnapshotRecord {
        let mut r = SnapshotRecord::new(
            OrganizationId::new_random(),
            "s",
            "img:1",
            SnapshotJob::Pull,
            "2026-01-01T00:00:00.000Z",
        );
        r.state = state;
        r
    }

    #[test]
    fn state_index_only_for_driven_and_active_states() {
        for st in SnapshotState::ALL {
            let i = item("T", &rec(*st)).unwrap();
            let indexed = i.contains_key("gsi2pk");
            assert_eq!(indexed, INDEXED_STATES.contains(st), "{st}");
            if indexed {
                assert_eq!(crate::item::get_s(&i, "gsi2pk"), Some(&*state_pk(*st)));
            }
        }
        let mut g = rec(SnapshotState::Active);
        g.general = true;
        let i = item("T", &g).unwrap();
        assert_eq!(crate::item::get_s(&i, "gsi1pk"), Some(GENERAL_LIST_PK));
        assert_eq!(crate::item::get_s(&i, "ref"), None);
    }

    #[test]
    fn patch_clears_the_reason_unless_failed() {
        let mut r = rec(SnapshotState::Error);
        r.error_reason = Some("old".into());
        SnapshotPatch::default().apply(&mut r, SnapshotState::Error);
        assert_eq!(r.error_reason.as_deref(), Some("old"));
        SnapshotPatch {
            size_bytes: Some(7),
            r#ref: Some("x".into()),
            ..Default::default()
        }
        .apply(&mut r, SnapshotState::Active);
        assert_eq!(
            (r.error_reason, r.size_bytes, r.r#ref.as_deref()),
            (None, Some(7), Some("x"))
        );
    }
}
