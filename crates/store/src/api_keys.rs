//! API keys: the canonical row `ORG#<orgId>` / `APIKEY#<userId>#<name>`, plus a pointer row
//! `APIKEYHASH#<sha256>` / `#META` carrying what authentication needs, written and deleted together.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{Item, META, from_item, key, s, to_item};
use crate::{Cursor, Page, Store, StoreError};

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
    /// Stores a new key. `Conflict` if the user already has a key of that name in the organization,
    /// or the organization is gone or being deleted.
    pub async fn create(&self, rec: &ApiKeyRecord) -> Result<(), StoreError> {
        let table = self.store.table();
        let canonical = to_item(
            "CreateApiKey",
            rec,
            &[
                ("pk", crate::orgs::pk(&rec.organization_id)),
                ("sk", sk(&rec.user_id, &rec.name)),
            ],
        )?;
        let auth = ApiKeyAuth {
            organization_id: rec.organization_id.clone(),
            user_id: rec.user_id.clone(),
            name: rec.name.clone(),
            key_prefix: rec.key_prefix.clone(),
            key_suffix: rec.key_suffix.clone(),
            created_at: rec.created_at.clone(),
            permissions: rec.permissions.clone(),
            expires_at: rec.expires_at.clone(),
            last_used_at: None,
        };
        let pointer = to_item(
            "CreateApiKey",
            &auth,
            &[("pk", hash_pk(&rec.key_hash)), ("sk", META.to_owned())],
        )?;
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let p = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Backend {
                    op: "CreateApiKey",
                    message: e.to_string(),
                })?;
            Ok(TransactWriteItem::builder().put(p).build())
        };
        self.store
            .client()
            .transact_write_items()
            .transact_items(put(canonical)?)
            .transact_items(put(pointer)?)
            .transact_items(crate::orgs::live_check(table, &rec.organization_id)?)
            .send()
            .await
            .map_err(|e| StoreError::backend("CreateApiKey", e))?;
        Ok(())
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
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_page(org, user, cursor.as_ref(), 100).await?;
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// One page of [`Self::list`], resuming after `cursor`.
    pub async fn list_page(
        &self,
        org: &OrganizationId,
        user: Option<&UserId>,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<Page<ApiKeyRecord>, StoreError> {
        let prefix = match user {
            Some(u) => format!("APIKEY#{u}#"),
            None => "APIKEY#".to_owned(),
        };
        let page = self
            .store
            .client()
            .query()
            .table_name(self.store.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(crate::orgs::pk(org)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .limit(limit)
            .set_exclusive_start_key(cursor.map(Cursor::to_key).transpose()?)
            .send()
            .await
            .map_err(|e| StoreError::backend("ListApiKeys", e))?;
        let items = page
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item("ListApiKeys", i))
            .collect::<Result<Vec<_>, _>>()?;
        let next = page
            .last_evaluated_key
            .filter(|k| !k.is_empty())
            .map(|k| Cursor::from_key(&k));
        Ok(Page { items, next })
    }

    /// Deletes the key and its pointer. `NotFound` if it does not exist (or was deleted concurrently).
    pub async fn delete(
        &self,
        org: &OrganizationId,
        user: &UserId,
        name: &str,
    ) -> Result<(), StoreError> {
        let Some(rec) = self.get(org, user, name).await? else {
            return Err(StoreError::NotFound { op: "DeleteApiKey" });
        };
        let table = self.store.table();
        let del = |k: Item, cond: Option<&str>| -> Result<TransactWriteItem, StoreError> {
            let d = Delete::builder()
                .table_name(table)
                .set_key(Some(k))
                .set_condition_expression(cond.map(str::to_owned))
                .build()
                .map_err(|e| StoreError::Backend {
                    op: "DeleteApiKey",
                    message: e.to_string(),
                })?;
            Ok(TransactWriteItem::builder().delete(d).build())
        };
        let res = self
            .store
            .client()
            .transact_write_items()
            .transact_items(del(
                key(crate::orgs::pk(org), sk(user, name)),
                Some("attribute_exists(pk)"),
            )?)
            .transact_items(del(key(hash_pk(&rec.key_hash), META), None)?)
            .send()
            .await
            .map_err(|e| StoreError::backend("DeleteApiKey", e));
        match res {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::NotFound { op: "DeleteApiKey" }),
            Err(e) => Err(e),
        }
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
