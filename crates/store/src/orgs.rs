//! Organizations: `ORG#<id>` / `#META`, and deleting everything an organization owns.

use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, ReturnValue, TransactWriteItem, WriteRequest,
};
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{Item, META, get_s, key, n, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

/// Quota defaults of a new organization (CONTRACT §8 entity defaults).
pub mod defaults {
    pub const MAX_CPU_PER_SANDBOX: i64 = 4;
    pub const MAX_MEMORY_PER_SANDBOX: i64 = 8;
    pub const MAX_DISK_PER_SANDBOX: i64 = 10;
    pub const MAX_SNAPSHOT_SIZE: i64 = 20;
    pub const SNAPSHOT_QUOTA: i64 = 30;
    pub const VOLUME_QUOTA: i64 = 100;
    pub const TOTAL_CPU_QUOTA: i64 = 10;
    pub const TOTAL_MEMORY_QUOTA: i64 = 10;
    pub const TOTAL_DISK_QUOTA: i64 = 30;
    pub const SECRET_QUOTA: i64 = 100;
    pub const MAX_SECRETS_PER_SANDBOX: i64 = 10;
    /// 14 days.
    pub const SNAPSHOT_DEACTIVATION_TIMEOUT_MINUTES: i64 = 20160;
    pub const SUSPENSION_CLEANUP_GRACE_PERIOD_HOURS: i64 = 24;
}

/// The quota of an organization. Rows written before these fields existed decode with the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrgQuota {
    pub max_cpu_per_sandbox: i64,
    pub max_memory_per_sandbox: i64,
    pub max_disk_per_sandbox: i64,
    pub max_snapshot_size: i64,
    pub snapshot_quota: i64,
    pub volume_quota: i64,
    pub total_cpu_quota: i64,
    pub total_memory_quota: i64,
    pub total_disk_quota: i64,
    pub secret_quota: i64,
    pub max_secrets_per_sandbox: i64,
    pub snapshot_deactivation_timeout_minutes: i64,
}

impl Default for OrgQuota {
    fn default() -> Self {
        use defaults::*;
        Self {
            max_cpu_per_sandbox: MAX_CPU_PER_SANDBOX,
            max_memory_per_sandbox: MAX_MEMORY_PER_SANDBOX,
            max_disk_per_sandbox: MAX_DISK_PER_SANDBOX,
            max_snapshot_size: MAX_SNAPSHOT_SIZE,
            snapshot_quota: SNAPSHOT_QUOTA,
            volume_quota: VOLUME_QUOTA,
            total_cpu_quota: TOTAL_CPU_QUOTA,
            total_memory_quota: TOTAL_MEMORY_QUOTA,
            total_disk_quota: TOTAL_DISK_QUOTA,
            secret_quota: SECRET_QUOTA,
            max_secrets_per_sandbox: MAX_SECRETS_PER_SANDBOX,
            snapshot_deactivation_timeout_minutes: SNAPSHOT_DEACTIVATION_TIMEOUT_MINUTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgRecord {
    pub id: OrganizationId,
    pub name: String,
    pub created_by: UserId,
    /// A user's personal organization: it can't be deleted or left.
    pub personal: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub suspended_at: Option<String>,
    #[serde(default)]
    pub suspension_reason: Option<String>,
    #[serde(default)]
    pub suspended_until: Option<String>,
    #[serde(default)]
    pub suspension_cleanup_grace_period_hours: Option<i64>,
    #[serde(default)]
    pub default_region_id: Option<String>,
    /// Stored as a nested map attribute `quota`.
    #[serde(default)]
    pub quota: OrgQuota,
    /// Set (conditionally, first) when the organization is being deleted: from then on every
    /// write that adds an item to its partition is refused (see `live_check`).
    #[serde(default)]
    pub deleting: bool,
    pub version: u64,
}

impl OrgRecord {
    /// A new, unsuspended organization with the default quota.
    pub fn new(name: String, created_by: UserId, personal: bool, now: String) -> Self {
        Self {
            id: OrganizationId::new_random(),
            name,
            created_by,
            personal,
            created_at: now.clone(),
            updated_at: now,
            suspended: false,
            suspended_at: None,
            suspension_reason: None,
            suspended_until: None,
            suspension_cleanup_grace_period_hours: None,
            default_region_id: None,
            quota: OrgQuota::default(),
            deleting: false,
            version: 1,
        }
    }
}

pub(crate) fn pk(id: &OrganizationId) -> String {
    format!("ORG#{id}")
}

pub(crate) fn item(rec: &OrgRecord) -> Result<Item, StoreError> {
    to_item(
        "PutOrganization",
        rec,
        &[("pk", pk(&rec.id)), ("sk", META.to_owned())],
    )
}

/// A transaction item that holds only while the organization exists and is not being deleted;
/// refused, it means `Conflict { OrganizationDeleting }`.
///
/// Every write that adds an item to an organization's partition (membership, role, role-name lock,
/// invitation, API key, sandbox name lock) carries it, so once [`OrgRepo::delete`] has marked the
/// organization such writes fail and its partition scan cannot miss anything.
pub(crate) fn live_check(
    store: &Store,
    op: &'static str,
    org: &OrganizationId,
) -> Result<TransactWriteItem, StoreError> {
    tx::check(
        store,
        op,
        key(pk(org), META),
        Cond::new("attribute_exists(pk) AND (attribute_not_exists(deleting) OR deleting = :f)")
            .value(":f", AttributeValue::Bool(false)),
    )
}

impl Store {
    /// Writes `items` (each must not exist yet: `Conflict { Exists }`) in one transaction that also
    /// requires the organization to be live (`live_check`).
    pub(crate) async fn put_new_in_org(
        &self,
        op: &'static str,
        org: &OrganizationId,
        items: Vec<Item>,
    ) -> Result<(), StoreError> {
        let mut t = Tx::new(op).with(
            Fail::Conflict(Conflict::OrganizationDeleting),
            live_check(self, op, org)?,
        );
        for item in items {
            t.push(
                Fail::Conflict(Conflict::Exists),
                tx::put_new(self, op, item)?,
            );
        }
        t.commit(self).await
    }
}

pub struct OrgRepo<'a> {
    pub(crate) store: &'a Store,
}

impl OrgRepo<'_> {
    pub async fn get(&self, id: &OrganizationId) -> Result<Option<OrgRecord>, StoreError> {
        self.store
            .get_record("GetOrganization", key(pk(id), META))
            .await
    }

    /// Creates the organization; `Conflict { Exists }` if the id is taken.
    pub async fn create(&self, rec: &OrgRecord) -> Result<(), StoreError> {
        self.store.put_new("PutOrganization", item(rec)?).await
    }

    /// Creates the organization and its owner's membership in one transaction.
    pub async fn create_with_owner(
        &self,
        rec: &OrgRecord,
        owner: &crate::memberships::MembershipRecord,
    ) -> Result<(), StoreError> {
        const OP: &str = "CreateOrganization";
        let exists = Fail::Conflict(Conflict::Exists);
        Tx::new(OP)
            .with(exists, tx::put_new(self.store, OP, item(rec)?)?)
            .with(
                exists,
                tx::put_new(self.store, OP, crate::memberships::item(owner)?)?,
            )
            .commit(self.store)
            .await
    }

    /// Replaces the organization if it is still at `rec.version - 1` (optimistic concurrency).
    /// The caller bumps `version` and `updatedAt`. `Conflict { Changed }` if it changed or is gone.
    pub async fn update(&self, rec: &OrgRecord) -> Result<(), StoreError> {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item(rec)?))
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(":v", n(rec.version.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| StoreError::backend("UpdateOrganization", e))?;
        Ok(())
    }

    /// Every item of the organization's partition (memberships, roles, invitations, API keys, ...).
    pub(crate) async fn partition(&self, id: &OrganizationId) -> Result<Vec<Item>, StoreError> {
        self.store
            .query_items("QueryOrganization", &Query::partition(pk(id)))
            .await
    }

    /// Deletes the organization and everything it owns:
    ///
    /// 1. mark `#META` `deleting` (`NotFound` if it is gone), which makes every later write that
    ///    adds an item to the partition fail its `live_check`;
    /// 2. with a strongly consistent read of the partition, look for sandbox name locks: every
    ///    sandbox that is not destroyed holds one, written in the transaction that created it
    ///    together with a `live_check`. A sandbox committed before the mark is seen here, one
    ///    after it was refused. Found one: undo the mark (unless another delete marked it since)
    ///    and answer `Conflict { OrganizationHasSandboxes }`;
    /// 3. delete every other item of the partition, and the API-key hash pointers those rows
    ///    name; nothing can be added behind the scan, since the mark is already there;
    /// 4. delete `#META`.
    ///
    /// A delete interrupted after step 1 can be run again (the mark is idempotent).
    pub async fn delete(&self, id: &OrganizationId) -> Result<(), StoreError> {
        let marked = self.mark_deleting(id).await?;
        if self.has_sandboxes(id).await? {
            self.unmark_deleting(id, marked).await?;
            return Err(StoreError::conflict(
                "DeleteOrganization",
                Conflict::OrganizationHasSandboxes,
            ));
        }
        self.purge(id).await?;
        self.store
            .client()
            .delete_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .send()
            .await
            .map_err(|e| StoreError::backend("DeleteOrganization", e))?;
        Ok(())
    }

    /// Step 1 of [`Self::delete`]: `deleting = true` and a version bump (so a concurrent
    /// optimistic [`Self::update`] loses and cannot clear the mark). Returns the version it wrote.
    /// `NotFound` if the organization is gone.
    pub async fn mark_deleting(&self, id: &OrganizationId) -> Result<u64, StoreError> {
        const OP: &str = "MarkOrganizationDeleting";
        let out = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET deleting = :t, version = version + :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::backend(OP, e));
        match out {
            Ok(o) => Ok(o
                .attributes
                .as_ref()
                .and_then(|a| a.get("version"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or_default()),
            Err(StoreError::Conflict { .. }) => {
                Err(StoreError::not_found(OP, Entity::Organization))
            }
            Err(e) => Err(e),
        }
    }

    /// Clears the mark of a refused delete, only while the row is still at the version the mark
    /// wrote (a second delete that marked it since keeps its mark).
    async fn unmark_deleting(&self, id: &OrganizationId, marked: u64) -> Result<(), StoreError> {
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET deleting = :f, version = version + :one")
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":v", n(marked))
            .send()
            .await
            .map_err(|e| StoreError::backend("UnmarkOrganizationDeleting", e));
        match res {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether a sandbox that is not destroyed belongs to the organization (strongly consistent:
    /// its name lock in the partition, not the eventually consistent list index).
    async fn has_sandboxes(&self, id: &OrganizationId) -> Result<bool, StoreError> {
        let q = Query::prefix(pk(id), crate::sandboxes::NAME_LOCK_PREFIX);
        let mut start = None;
        loop {
            let page = self
                .store
                .query_page("CheckOrganizationSandboxes", &q, Some(1), start)
                .await?;
            if !page.items.is_empty() {
                return Ok(true);
            }
            match page.next {
                Some(k) => start = Some(k),
                None => return Ok(false),
            }
        }
    }

    /// Deletes every item of the partition but `#META`, plus the API-key pointers and the
    /// `SNAPSHOT#<id>` rows the snapshot name locks name; the volumes the volume name locks name
    /// go to `pending_delete` first (the sweep removes their storage). Idempotent.
    pub(crate) async fn purge(&self, id: &OrganizationId) -> Result<(), StoreError> {
        let items = self.partition(id).await?;
        let mut keys: Vec<Item> = Vec::with_capacity(items.len() * 2);
        let mut volumes = Vec::new();
        for it in &items {
            let (Some(pk_), Some(sk_)) = (get_s(it, "pk"), get_s(it, "sk")) else {
                continue;
            };
            if sk_ == META {
                continue;
            }
            if sk_.starts_with("APIKEY#")
                && let Some(h) = get_s(it, "keyHash")
            {
                keys.push(key(format!("APIKEYHASH#{h}"), META));
            }
            if sk_.starts_with(crate::snapshots::NAME_LOCK_PREFIX)
                && let Some(row) = crate::snapshots::row_of_lock(it)
            {
                keys.push(row);
            }
            if sk_.starts_with(crate::volumes::NAME_LOCK_PREFIX) {
                volumes.extend(crate::volumes::volume_of_lock(it));
            }
            keys.push(key(pk_, sk_));
        }
        keys.extend(crate::sandboxes::events::event_keys(self.store, id).await?);
        // The volumes' storage is emptied by the lifecycle sweep (their rows stay until then).
        for v in &volumes {
            self.store.volumes().doom(v).await?;
        }
        self.store.batch_delete("PurgeOrganization", keys).await
    }
}

impl Store {
    /// Deletes the items with these keys, 25 per `BatchWriteItem`, retrying unprocessed ones.
    pub(crate) async fn batch_delete(
        &self,
        op: &'static str,
        keys: Vec<Item>,
    ) -> Result<(), StoreError> {
        for chunk in keys.chunks(25) {
            let reqs: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::builder(op, e))
                })
                .collect::<Result<_, _>>()?;
            self.batch_write(op, reqs).await?;
        }
        Ok(())
    }

    /// One `BatchWriteItem` of at most 25 requests, resending what comes back unprocessed.
    async fn batch_write(
        &self,
        op: &'static str,
        mut reqs: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        for _attempt in 0..10 {
            if reqs.is_empty() {
                return Ok(());
            }
            let out = self
                .client()
                .batch_write_item()
                .request_items(self.table(), reqs)
                .send()
                .await
                .map_err(|e| StoreError::backend(op, e))?;
            reqs = out
                .unprocessed_items
                .and_then(|mut m| m.remove(self.table()))
                .unwrap_or_default();
        }
        if reqs.is_empty() {
            return Ok(());
        }
        Err(StoreError::Backend {
            op,
            message: format!("{} deletes left unprocessed", reqs.len()),
        })
    }
}
