//! Memberships: `ORG#<orgId>` / `MEMBER#<userId>`, indexed by user in GSI1.

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

fn sk(user: &UserId) -> String {
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
        let out = self
            .store
            .client()
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(key(crate::orgs::pk(org), sk(user))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend("GetMembership", e))?;
        out.item.map(|i| from_item("GetMembership", i)).transpose()
    }

    pub async fn create(&self, rec: &MembershipRecord) -> Result<(), StoreError> {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item(rec)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::backend("PutMembership", e))?;
        Ok(())
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
