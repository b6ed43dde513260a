//! Memberships: `ORG#<orgId>` / `MEMBER#<userId>`, indexed by user in GSI1.

use aws_sdk_dynamodb::types::TransactWriteItem;
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{Item, key, n, s, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

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

    /// Adds a membership; `Conflict { Exists }` if it exists, `Conflict { OrganizationDeleting }`
    /// if the organization is gone or being deleted.
    pub async fn create(&self, rec: &MembershipRecord) -> Result<(), StoreError> {
        self.store
            .put_new_in_org("PutMembership", &rec.organization_id, vec![item(rec)?])
            .await
    }

    /// Every organization the user belongs to (GSI1, eventually consistent on AWS).
    pub async fn list_for_user(&self, user: &UserId) -> Result<Vec<MembershipRecord>, StoreError> {
        self.store
            .query_all(
                "ListMembershipsOfUser",
                &Query::gsi1(crate::users::pk(user)),
            )
            .await
    }

    /// Every member of an organization (strongly consistent), sorted by user id.
    pub async fn list_for_org(
        &self,
        org: &OrganizationId,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        self.store
            .query_all(
                "ListMembers",
                &Query::prefix(crate::orgs::pk(org), "MEMBER#"),
            )
            .await
    }

    /// Replaces a membership that is still at `rec.version - 1` (`Conflict { Changed }`).
    ///
    /// When the change takes away an owner role, `other_owner` must name another member that is
    /// an owner: the write is conditioned on that membership still being an owner's
    /// (`Conflict { LastOwner }`), so two concurrent demotions/removals can never leave the
    /// organization without an owner.
    pub async fn update(
        &self,
        rec: &MembershipRecord,
        other_owner: Option<&UserId>,
    ) -> Result<(), StoreError> {
        const OP: &str = "UpdateMembership";
        let cond = Cond::new("attribute_exists(pk) AND version = :v")
            .value(":v", n(rec.version.saturating_sub(1)));
        let mut t = Tx::new(OP).with(
            Fail::Conflict(Conflict::Changed),
            tx::put(self.store, OP, item(rec)?, cond)?,
        );
        if let Some(o) = other_owner {
            t.push(
                Fail::Conflict(Conflict::LastOwner),
                owner_check(self.store, &rec.organization_id, o)?,
            );
        }
        t.commit(self.store).await
    }

    /// Deletes a membership (`NotFound` if it is gone). `other_owner` as in [`Self::update`].
    pub async fn delete(
        &self,
        org: &OrganizationId,
        user: &UserId,
        other_owner: Option<&UserId>,
    ) -> Result<(), StoreError> {
        const OP: &str = "DeleteMembership";
        let row = key(crate::orgs::pk(org), sk(user));
        let mut t = Tx::new(OP).with(
            Fail::NotFound(Entity::Membership),
            tx::delete(self.store, OP, row, Some(Cond::present()))?,
        );
        if let Some(o) = other_owner {
            t.push(
                Fail::Conflict(Conflict::LastOwner),
                owner_check(self.store, org, o)?,
            );
        }
        t.commit(self.store).await
    }
}

fn owner_check(
    store: &Store,
    org: &OrganizationId,
    user: &UserId,
) -> Result<TransactWriteItem, StoreError> {
    tx::check(
        store,
        "OwnerCheck",
        key(crate::orgs::pk(org), sk(user)),
        Cond::new("#r = :owner")
            .name("#r", "role")
            .value(":owner", s("owner")),
    )
}
