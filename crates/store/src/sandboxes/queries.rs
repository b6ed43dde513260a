//! Reads of sandboxes and of the organization's usage counters.

use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId};
use cove_api_types::sandbox::SandboxState;
use serde::Deserialize;

use super::due;
use super::usage::{SandboxUsage, USAGE_SK};
use super::{
    BACKUP_REMOVAL_PK, MAX_PAGE, SandboxRecord, SandboxRepo, list_pk, name_sk, pk, runner_pk,
};
use crate::item::{Item, META, from_item, key, s};
use crate::query::Query;
use crate::{Cursor, Page, StoreError};

impl SandboxRepo<'_> {
    pub async fn get(&self, id: &SandboxId) -> Result<Option<SandboxRecord>, StoreError> {
        self.store.get_record("GetSandbox", key(pk(id), META)).await
    }

    /// The sandbox that holds `name` in the organization (destroyed sandboxes hold no name).
    pub async fn get_by_name(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> Result<Option<SandboxRecord>, StoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Lock {
            sandbox_id: SandboxId,
        }
        let lock_key = key(crate::orgs::pk(org), name_sk(name));
        let Some(lock) = self
            .store
            .get_record::<Lock>("GetSandboxName", lock_key)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .get(&lock.sandbox_id)
            .await?
            .filter(|r| r.org_id == *org && r.name == name && !r.is_destroyed()))
    }

    /// The organization's sandboxes, newest first, destroyed ones excluded; at most `limit`
    /// (1..=[`MAX_PAGE`]) per page, `next` set when there may be more.
    pub async fn list_by_org(
        &self,
        org: &OrganizationId,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<Page<SandboxRecord>, StoreError> {
        const OP: &str = "ListSandboxes";
        let limit = limit.clamp(1, MAX_PAGE);
        let q = Query::gsi1(list_pk(org))
            .filter("#st <> :destroyed")
            .name("#st", "state")
            .value(":destroyed", s(SandboxState::Destroyed.as_str()))
            .descending();
        let mut start = cursor.map(|c| own_cursor(&q, c)).transpose()?;
        let mut items = Vec::with_capacity(limit);
        loop {
            let want = i32::try_from(limit - items.len()).unwrap_or(i32::MAX);
            let page = self.store.query_page(OP, &q, Some(want), start).await?;
            for i in page.items {
                items.push(from_item(OP, i)?);
            }
            match page.next {
                Some(k) if items.len() < limit => start = Some(k),
                next => {
                    return Ok(Page {
                        items,
                        next: next.map(|k| Cursor::from_key(&k)),
                    });
                }
            }
        }
    }

    /// Every sandbox placed on the runner that is not destroyed (GSI2, eventually consistent on
    /// AWS).
    pub async fn list_by_runner(
        &self,
        runner_id: &RunnerId,
    ) -> Result<Vec<SandboxRecord>, StoreError> {
        let q = Query::gsi2_prefix(runner_pk(runner_id), "SANDBOX#");
        let all: Vec<SandboxRecord> = self.store.query_all("ListRunnerSandboxes", &q).await?;
        Ok(all.into_iter().filter(|r| !r.is_destroyed()).collect())
    }

    /// The sandboxes something is due for at `now` (GSI3, every shard, earliest first in each;
    /// eventually consistent on AWS: read the row again before acting on it), at most `limit`
    /// per shard. Reads grow with the number due, not with the table.
    pub async fn list_due(
        &self,
        now: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<SandboxRecord>, StoreError> {
        let until = due::until(now);
        let want = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let mut out = Vec::new();
        for shard in 0..due::SHARDS {
            let q = Query::gsi3_until(due::shard_key(shard), &until);
            let page = self
                .store
                .query_page("ListDueSandboxes", &q, Some(want), None)
                .await?;
            for i in page.items {
                out.push(from_item::<SandboxRecord>("ListDueSandboxes", i)?);
            }
        }
        Ok(out)
    }

    /// Destroyed sandboxes whose backups are still on a runner (GSI1, eventually consistent on
    /// AWS: read the row again before acting on it).
    pub async fn list_backup_removals(&self) -> Result<Vec<SandboxRecord>, StoreError> {
        let q = Query::gsi1(BACKUP_REMOVAL_PK);
        let all: Vec<SandboxRecord> = self.store.query_all("ListBackupRemovals", &q).await?;
        Ok(all
            .into_iter()
            .filter(SandboxRecord::has_backups_to_remove)
            .collect())
    }

    /// The organization's usage counters (zero when it never had a sandbox).
    pub async fn usage(&self, org: &OrganizationId) -> Result<SandboxUsage, StoreError> {
        Ok(self
            .store
            .get_record::<SandboxUsage>("GetSandboxUsage", key(crate::orgs::pk(org), USAGE_SK))
            .await?
            .unwrap_or_default())
    }
}

/// The start key of `cursor`, which must come from a listing of the same index partition.
fn own_cursor(q: &Query, cursor: &Cursor) -> Result<Item, StoreError> {
    let k = cursor.to_key()?;
    let ours = k.get("gsi1pk") == q.index_pk() && k.contains_key("gsi1sk");
    if ours {
        Ok(k)
    } else {
        Err(StoreError::InvalidCursor)
    }
}
