//! Invitations: `ORG#<orgId>` / `INVITE#<id>`, indexed for the invitee in GSI1
//! (`INVITEE#<lowercased email>` / `INVITE#<id>`).

use aws_sdk_dynamodb::types::Update;
use cove_api_types::ids::OrganizationId;
use serde::{Deserialize, Serialize};

use crate::item::{Item, key, n, s, to_item};
use crate::memberships::{MembershipRecord, OrgRole};
use crate::query::Query;
use crate::tx::{self, Fail, Tx};
use crate::{Conflict, Store, StoreError};

/// Where an invitation is in its life. Only `Pending` ones can be accepted, declined, updated or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InviteStatus {
    Pending,
    Accepted,
    Declined,
    Cancelled,
}

impl InviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InviteStatus::Pending => "pending",
            InviteStatus::Accepted => "accepted",
            InviteStatus::Declined => "declined",
            InviteStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteRecord {
    /// UUID.
    pub id: String,
    pub organization_id: OrganizationId,
    pub organization_name: String,
    /// Lowercased.
    pub email: String,
    /// Email (or id) of the inviting user.
    pub invited_by: String,
    pub role: OrgRole,
    #[serde(default)]
    pub assigned_role_ids: Vec<String>,
    pub status: InviteStatus,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

fn sk(id: &str) -> String {
    format!("INVITE#{id}")
}

fn invitee_pk(email: &str) -> String {
    format!("INVITEE#{}", email.to_lowercase())
}

fn item(rec: &InviteRecord) -> Result<Item, StoreError> {
    to_item(
        "PutInvitation",
        rec,
        &[
            ("pk", crate::orgs::pk(&rec.organization_id)),
            ("sk", sk(&rec.id)),
            ("gsi1pk", invitee_pk(&rec.email)),
            ("gsi1sk", sk(&rec.id)),
        ],
    )
}

pub struct InvitationRepo<'a> {
    pub(crate) store: &'a Store,
}

impl InvitationRepo<'_> {
    /// `Conflict { Exists }` if the id is taken, `Conflict { OrganizationDeleting }` if the
    /// organization is gone or being deleted.
    pub async fn create(&self, rec: &InviteRecord) -> Result<(), StoreError> {
        self.store
            .put_new_in_org("CreateInvitation", &rec.organization_id, vec![item(rec)?])
            .await
    }

    pub async fn get(
        &self,
        org: &OrganizationId,
        id: &str,
    ) -> Result<Option<InviteRecord>, StoreError> {
        self.store
            .get_record("GetInvitation", key(crate::orgs::pk(org), sk(id)))
            .await
    }

    /// Every invitation of the organization, whatever its status.
    pub async fn list(&self, org: &OrganizationId) -> Result<Vec<InviteRecord>, StoreError> {
        self.store
            .query_all(
                "ListInvitations",
                &Query::prefix(crate::orgs::pk(org), "INVITE#"),
            )
            .await
    }

    /// Every invitation addressed to `email` (GSI1, eventually consistent on AWS).
    pub async fn list_for_email(&self, email: &str) -> Result<Vec<InviteRecord>, StoreError> {
        self.store
            .query_all(
                "ListInvitationsOfInvitee",
                &Query::gsi1_prefix(invitee_pk(email), "INVITE#"),
            )
            .await
    }

    /// Replaces a pending invitation still at `rec.version - 1`; `Conflict { Changed }` otherwise.
    pub async fn update(&self, rec: &InviteRecord) -> Result<(), StoreError> {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item(rec)?))
            .condition_expression("attribute_exists(pk) AND version = :v AND #st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":v", n(rec.version.saturating_sub(1)))
            .expression_attribute_values(":pending", s(InviteStatus::Pending.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::backend("UpdateInvitation", e))?;
        Ok(())
    }

    fn close(
        &self,
        op: &'static str,
        rec: &InviteRecord,
        to: InviteStatus,
        now: &str,
    ) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(self.store.table())
            .set_key(Some(key(
                crate::orgs::pk(&rec.organization_id),
                sk(&rec.id),
            )))
            .update_expression("SET #st = :to, updatedAt = :now, version = version + :one")
            .condition_expression("attribute_exists(pk) AND #st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":pending", s(InviteStatus::Pending.as_str()))
            .build()
            .map_err(|e| StoreError::builder(op, e))
    }

    /// Moves a pending invitation to `Declined` or `Cancelled`; `Conflict { Changed }` if it is no
    /// longer pending.
    pub async fn set_status(
        &self,
        rec: &InviteRecord,
        to: InviteStatus,
        now: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "CloseInvitation";
        Tx::new(OP)
            .with(
                Fail::Conflict(Conflict::Changed),
                tx::update(self.close(OP, rec, to, now)?),
            )
            .commit(self.store)
            .await
    }

    /// Accepts a pending invitation: marks it accepted and adds `member`, atomically. Refused
    /// (`Conflict`) when the invitation is no longer pending (`Changed`), the user is a member
    /// already (`Exists`) or the organization is gone or being deleted (`OrganizationDeleting`).
    pub async fn accept(
        &self,
        rec: &InviteRecord,
        member: &MembershipRecord,
        now: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "AcceptInvitation";
        let store = self.store;
        Tx::new(OP)
            .with(
                Fail::Conflict(Conflict::Changed),
                tx::update(self.close(OP, rec, InviteStatus::Accepted, now)?),
            )
            .with(
                Fail::Conflict(Conflict::Exists),
                tx::put_new(store, OP, crate::memberships::item(member)?)?,
            )
            .with(
                Fail::Conflict(Conflict::OrganizationDeleting),
                crate::orgs::live_check(store, OP, &rec.organization_id)?,
            )
            .commit(store)
            .await
    }
}
