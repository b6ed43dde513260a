//! Memberships: `ORG#<orgId>` / `MEMBER#<userId>`, indexed by user in GSI1.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{Item, from_item, key, s, to_item};
use crate::table::GSI1;
use crate::{Store, StoreError};

/// A member's role in an organization. Owners bypass permission checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Owner,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipRecord {
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub role: OrgRole,
    #[serde(default)]
    pub assigned_role_ids: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

pub(crate) fn sk(user: &UserId) -> String {
    format!("MEMBER#{user}")
}

pub(crate) fn item(rec: &MembershipRecord) -> Result<Item, StoreError> {
    to_item(
        "PutMembership",
        rec,
        &[
            ("pk", crate::orgs::pk(&rec.organization_id)),
            ("sk", sk(&rec.user_id)),
            ("gsi1pk", crate::users::pk(&rec.user_id)),
            ("gsi1sk", crate::orgs::pk(&rec.organization_id)),
        ],
    )
}

pub struct MembershipRepo<'a> {
    pub(crate) store: &'a Store,
}

impl MembershipRepo<'_> {
    pub async fn get(
        &self,
        org: &OrganizationId,
        user: &UserId,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        self.store
            .get_record("GetMembership", key(crate::orgs::pk(org), sk(user)))
            .await
    }

    /// Adds a membership; `Conflict` if it exists or the organization is gone or being deleted.
    pub async fn create(&self, rec: &MembershipRecord) -> Result<(), StoreError> {
        self.store
            .put_new_in_org("PutMembership", &rec.organization_id, vec![item(rec)?])
            .await
    }

    /// Every organization the user belongs to (GSI1, eventually consistent on AWS).
    pub async fn list_for_user(&self, user: &UserId) -> Result<Vec<MembershipRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :u")
                .expression_attribute_values(":u", s(crate::users::pk(user)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend("ListMembershipsOfUser", e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item("ListMembershipsOfUser", i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

impl MembershipRepo<'_> {
    /// Every member of an organization (strongly consistent), sorted by user id.
    pub async fn list_for_org(
        &self,
        org: &OrganizationId,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(crate::orgs::pk(org)))
                .expression_attribute_values(":p", s("MEMBER#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend("ListMembers", e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item("ListMembers", i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Replaces a membership that is still at `rec.version - 1`.
    ///
    /// When the change takes away an owner role, `other_owner` must name another member that is
    /// an owner: the write is conditioned on that membership still being an owner's, so two
    /// concurrent demotions/removals can never leave the organization without an owner.
    pub async fn update(
        &self,
        rec: &MembershipRecord,
        other_owner: Option<&UserId>,
    ) -> Result<(), StoreError> {
        let table = self.store.table();
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item(rec)?))
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(":v", n(rec.version.saturating_sub(1)))
            .build()
            .map_err(|e| builder_err("UpdateMembership", e))?;
        let mut tx = self
            .store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build());
        if let Some(o) = other_owner {
            tx = tx.transact_items(owner_check(table, &rec.organization_id, o)?);
        }
        tx.send()
            .await
            .map_err(|e| StoreError::backend("UpdateMembership", e))?;
        Ok(())
    }

    /// Deletes a membership (`NotFound` if it is gone). `other_owner` as in [`Self::update`].
    pub async fn delete(
        &self,
        org: &OrganizationId,
        user: &UserId,
        other_owner: Option<&UserId>,
    ) -> Result<(), StoreError> {
        let table = self.store.table();
        let del = Delete::builder()
            .table_name(table)
            .set_key(Some(key(crate::orgs::pk(org), sk(user))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| builder_err("DeleteMembership", e))?;
        let mut tx = self
            .store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(del).build());
        if let Some(o) = other_owner {
            tx = tx.transact_items(owner_check(table, org, o)?);
        }
        tx.send()
            .await
            .map_err(|e| StoreError::backend("DeleteMembership", e))?;
        Ok(())
    }
}

pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn builder_err(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        op,
        message: e.to_string(),
    }
}

fn owner_check(
    table: &str,
    org: &OrganizationId,
    user: &UserId,
) -> Result<TransactWriteItem, StoreError> {
    let c = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key(crate::orgs::pk(org), sk(user))))
        .condition_expression("#r = :owner")
        .expression_attribute_names("#r", "role")
        .expression_attribute_values(":owner", s("owner"))
        .build()
        .map_err(|e| builder_err("OwnerCheck", e))?;
    Ok(TransactWriteItem::builder().condition_check(c).build())
}
