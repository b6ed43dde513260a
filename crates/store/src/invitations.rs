//! Invitations: `ORG#<orgId>` / `INVITE#<id>`, indexed for the invitee in GSI1
//! (`INVITEE#<lowercased email>` / `INVITE#<id>`).

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use cove_api_types::ids::OrganizationId;
use serde::{Deserialize, Serialize};

use crate::item::{Item, from_item, key, s, to_item};
use crate::memberships::{MembershipRecord, OrgRole, builder_err, n};
use crate::table::GSI1;
use crate::{Store, StoreError};

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
    /// `Conflict` if the id is taken or the organization is gone or being deleted.
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
        self.query(
            "ListInvitations",
            None,
            "pk = :pk AND begins_with(sk, :p)",
            crate::orgs::pk(org),
        )
        .await
    }

    /// Every invitation addressed to `email` (GSI1, eventually consistent on AWS).
    pub async fn list_for_email(&self, email: &str) -> Result<Vec<InviteRecord>, StoreError> {
        self.query(
            "ListInvitationsOfInvitee",
            Some(GSI1),
            "gsi1pk = :pk AND begins_with(gsi1sk, :p)",
            invitee_pk(email),
        )
        .await
    }

    async fn query(
        &self,
        op: &'static str,
        index: Option<&str>,
        cond: &str,
        pk: String,
    ) -> Result<Vec<InviteRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(cond)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":p", s("INVITE#"))
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend(op, e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item(op, i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Replaces a pending invitation still at `rec.version - 1`; `Conflict` otherwise.
    pub async fn update(&self, rec: &InviteRecord) -> Result<(), StoreError> {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item(rec)?))
            .condition_expression("attribute_exists(pk) AND version = :v AND #st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":v", n(rec.version.saturating_sub(1)))
            .expression_attribute_values(":pending", s("pending"))
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
            .expression_attribute_values(":pending", s("pending"))
            .build()
            .map_err(|e| builder_err(op, e))
    }

    /// Moves a pending invitation to `Declined` or `Cancelled`; `Conflict` if it is no longer pending.
    pub async fn set_status(
        &self,
        rec: &InviteRecord,
        to: InviteStatus,
        now: &str,
    ) -> Result<(), StoreError> {
        let u = self.close("CloseInvitation", rec, to, now)?;
        self.store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(u).build())
            .send()
            .await
            .map_err(|e| StoreError::backend("CloseInvitation", e))?;
        Ok(())
    }

    /// Accepts a pending invitation: marks it accepted and adds `member`, atomically; the
    /// organization must still exist (and not be being deleted) and the user must not be a member yet. `Conflict` otherwise.
    pub async fn accept(
        &self,
        rec: &InviteRecord,
        member: &MembershipRecord,
        now: &str,
    ) -> Result<(), StoreError> {
        let table = self.store.table();
        let u = self.close("AcceptInvitation", rec, InviteStatus::Accepted, now)?;
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(crate::memberships::item(member)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| builder_err("AcceptInvitation", e))?;
        self.store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(u).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(crate::orgs::live_check(table, &rec.organization_id)?)
            .send()
            .await
            .map_err(|e| StoreError::backend("AcceptInvitation", e))?;
        Ok(())
    }
}
