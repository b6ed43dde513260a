//! Users: `USER#<id>` / `#META`, and first-sight provisioning with a personal organization.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{META, from_item, key, to_item};
use crate::memberships::{MembershipRecord, OrgRole};
use crate::orgs::OrgRecord;
use crate::{Store, StoreError};

/// The platform-wide role of a user (Daytona's `SystemRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemRole {
    Admin,
    User,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub id: UserId,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub email_verified: bool,
    pub role: SystemRole,
    pub personal_organization_id: OrganizationId,
    pub created_at: String,
    pub version: u64,
}

pub(crate) fn pk(id: &UserId) -> String {
    format!("USER#{id}")
}

/// What is known about a user seen for the first time.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub role: SystemRole,
}

pub struct UserRepo<'a> {
    pub(crate) store: &'a Store,
}

impl UserRepo<'_> {
    pub async fn get(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.store.get_record("GetUser", key(pk(id), META)).await
    }

    /// Returns the user, creating it with a personal organization (owned by it) if it is new.
    ///
    /// User, organization and owner membership are written in one transaction, so concurrent
    /// first requests of the same user provision exactly once.
    pub async fn get_or_provision(&self, new: NewUser) -> Result<UserRecord, StoreError> {
        if let Some(u) = self.get(&new.id).await? {
            return Ok(u);
        }
        let now = cove_api_types::time::now_rfc3339();
        let org = OrgRecord::new("Personal".into(), new.id.clone(), true, now.clone());
        let user = UserRecord {
            id: new.id,
            name: new.name,
            email: new.email,
            email_verified: new.email_verified,
            role: new.role,
            personal_organization_id: org.id.clone(),
            created_at: now.clone(),
            version: 1,
        };
        let member = MembershipRecord {
            organization_id: org.id.clone(),
            user_id: user.id.clone(),
            role: OrgRole::Owner,
            assigned_role_ids: vec![],
            created_at: now.clone(),
            updated_at: now,
            version: 1,
        };
        let put = |item, cond: &str| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(self.store.table())
                .set_item(Some(item))
                .condition_expression(cond)
                .build()
                .map_err(|e| StoreError::Backend {
                    op: "ProvisionUser",
                    message: e.to_string(),
                })?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let user_item = to_item(
            "ProvisionUser",
            &user,
            &[("pk", pk(&user.id)), ("sk", META.to_owned())],
        )?;
        let res = self
            .store
            .client()
            .transact_write_items()
            .transact_items(put(user_item, "attribute_not_exists(pk)")?)
            .transact_items(put(crate::orgs::item(&org)?, "attribute_not_exists(pk)")?)
            .transact_items(put(
                crate::memberships::item(&member)?,
                "attribute_not_exists(pk)",
            )?)
            .send()
            .await
            .map_err(|e| StoreError::backend("ProvisionUser", e));
        match res {
            Ok(_) => Ok(user),
            // Someone provisioned the same user concurrently: theirs won.
            Err(StoreError::Conflict { .. }) => {
                self.get(&user.id).await?.ok_or(StoreError::NotFound {
                    op: "ProvisionUser",
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl UserRepo<'_> {
    /// Every user, sorted by id. A filtered scan of the table: for system-admin listings only.
    pub async fn list(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut out: Vec<UserRecord> = Vec::new();
        let mut start: Option<crate::item::Item> = None;
        loop {
            let page = self
                .store
                .client()
                .scan()
                .table_name(self.store.table())
                .filter_expression("begins_with(pk, :u) AND sk = :meta")
                .expression_attribute_values(":u", crate::item::s("USER#"))
                .expression_attribute_values(":meta", crate::item::s(META))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend("ListUsers", e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item("ListUsers", i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
