//! API keys: the canonical row `ORG#<orgId>` / `APIKEY#<userId>#<name>`, plus a pointer row
//! `APIKEYHASH#<sha256>` / `#META` carrying what authentication needs, written and deleted together.

use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{META, from_item, key, s, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Cursor, Entity, Page, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub name: String,
    /// sha256 of the key, hex.
    pub key_hash: String,
    pub key_prefix: String,
    pub key_suffix: String,
    /// Permission wire names (`write:sandboxes`, ...).
    pub permissions: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
    pub version: u64,
}

/// The pointer row read on every API-key authenticated request: everything about the key but its
/// hash, so that authenticating (and `GET /api-keys/current`) costs one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAuth {
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub name: String,
    pub key_prefix: String,
    pub key_suffix: String,
    pub created_at: String,
    pub permissions: Vec<String>,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
}

impl ApiKeyAuth {
    fn of(rec: &ApiKeyRecord) -> Self {
        Self {
            organization_id: rec.organization_id.clone(),
            user_id: rec.user_id.clone(),
            name: rec.name.clone(),
            key_prefix: rec.key_prefix.clone(),
            key_suffix: rec.key_suffix.clone(),
            created_at: rec.created_at.clone(),
            permissions: rec.permissions.clone(),
            expires_at: rec.expires_at.clone(),
            last_used_at: None,
        }
    }
}

fn sk(user: &UserId, name: &str) -> String {
    format!("APIKEY#{user}#{name}")
}

fn hash_pk(hash: &str) -> String {
    format!("APIKEYHASH#{hash}")
}

pub struct ApiKeyRepo<'a> {
    pub(crate) store: &'a Store,
}

impl ApiKeyRepo<'_> {
    /// Stores a new key. `Conflict { Exists }` if the user already has a key of that name in the
    /// organization (or the hash is taken), `Conflict { OrganizationDeleting }` if the
    /// organization is gone or being deleted.
    pub async fn create(&self, rec: &ApiKeyRecord) -> Result<(), StoreError> {
        const OP: &str = "CreateApiKey";
        let canonical = to_item(
            OP,
            rec,
            &[
                ("pk", crate::orgs::pk(&rec.organization_id)),
                ("sk", sk(&rec.user_id, &rec.name)),
            ],
        )?;
        let pointer = to_item(
            OP,
            &ApiKeyAuth::of(rec),
            &[("pk", hash_pk(&rec.key_hash)), ("sk", META.to_owned())],
        )?;
        let store = self.store;
        let exists = Fail::Conflict(Conflict::Exists);
        Tx::new(OP)
            .with(exists, tx::put_new(store, OP, canonical)?)
            .with(exists, tx::put_new(store, OP, pointer)?)
            .with(
                Fail::Conflict(Conflict::OrganizationDeleting),
                crate::orgs::live_check(store, OP, &rec.organization_id)?,
            )
            .commit(store)
            .await
    }

    pub async fn get(
        &self,
        org: &OrganizationId,
        user: &UserId,
        name: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.store
            .get_record("GetApiKey", key(crate::orgs::pk(org), sk(user, name)))
            .await
    }

    /// The authentication view of a key, by the sha256 of its value.
    pub async fn get_by_hash(&self, hash: &str) -> Result<Option<ApiKeyAuth>, StoreError> {
        self.store
            .get_record("GetApiKeyByHash", key(hash_pk(hash), META))
            .await
    }

    /// Keys of an organization; only one user's when `user` is given. Sorted by user, then name.
    pub async fn list(
        &self,
        org: &OrganizationId,
        user: Option<&UserId>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store
            .query_all("ListApiKeys", &Self::query(org, user))
            .await
    }

    fn query(org: &OrganizationId, user: Option<&UserId>) -> Query {
        let prefix = match user {
            Some(u) => format!("APIKEY#{u}#"),
            None => "APIKEY#".to_owned(),
        };
        Query::prefix(crate::orgs::pk(org), &prefix)
    }

    /// One page of [`Self::list`], resuming after `cursor`.
    pub async fn list_page(
        &self,
        org: &OrganizationId,
        user: Option<&UserId>,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<Page<ApiKeyRecord>, StoreError> {
        const OP: &str = "ListApiKeys";
        let start = cursor.map(Cursor::to_key).transpose()?;
        let page = self
            .store
            .query_page(OP, &Self::query(org, user), Some(limit), start)
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|i| from_item(OP, i))
                .collect::<Result<Vec<_>, _>>()?,
            next: page.next.map(|k| Cursor::from_key(&k)),
        })
    }

    /// Deletes the key and its pointer. `NotFound` if it does not exist (or was deleted concurrently).
    pub async fn delete(
        &self,
        org: &OrganizationId,
        user: &UserId,
        name: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "DeleteApiKey";
        let missing = Fail::NotFound(Entity::ApiKey);
        let Some(rec) = self.get(org, user, name).await? else {
            return Err(missing.into_error(OP));
        };
        let store = self.store;
        let row = key(crate::orgs::pk(org), sk(user, name));
        Tx::new(OP)
            .with(missing, tx::delete(store, OP, row, Some(Cond::present()))?)
            .with(
                missing,
                tx::delete(store, OP, key(hash_pk(&rec.key_hash), META), None)?,
            )
            .commit(store)
            .await
    }

    /// Records a use of the key. Writes only when the last recorded use is older than `min_interval_secs`,
    /// so a busy key costs one write every few seconds, not one per request.
    pub async fn touch(
        &self,
        auth: &ApiKeyAuth,
        key_hash: &str,
        now: &str,
        min_interval_secs: i64,
    ) -> Result<(), StoreError> {
        let fresh = auth
            .last_used_at
            .as_deref()
            .and_then(cove_api_types::time::parse_rfc3339)
            .zip(cove_api_types::time::parse_rfc3339(now));
        if let Some((last, now)) = fresh
            && (now - last).whole_seconds() < min_interval_secs
        {
            return Ok(());
        }
        for (pk, sk_) in [
            (
                crate::orgs::pk(&auth.organization_id),
                sk(&auth.user_id, &auth.name),
            ),
            (hash_pk(key_hash), META.to_owned()),
        ] {
            let res = self
                .store
                .client()
                .update_item()
                .table_name(self.store.table())
                .set_key(Some(key(pk, sk_)))
                .update_expression("SET lastUsedAt = :now")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", s(now))
                .send()
                .await
                .map_err(|e| StoreError::backend("TouchApiKey", e));
            match res {
                // Deleted meanwhile: nothing to record.
                Ok(_) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
