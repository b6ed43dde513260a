//! Users: `USER#<id>` / `#META`, and first-sight provisioning with a personal organization.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{META, from_item, key, s, to_item};
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
    /// The user's platform key pair, once generated (`regenerate-key-pair`). Never sent out.
    #[serde(default)]
    pub key_pair: Option<UserKeyPair>,
    pub version: u64,
}

/// A user's key pair: the public half in OpenSSH form, the private half as the caller encoded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserKeyPair {
    pub public_key: String,
    pub private_key: String,
    pub created_at: String,
}

/// An identity of the user at another provider: `USER#<id>` / `LINK#<provider>#<providerUserId>`,
/// claimed table-wide by `ACCOUNTLINK#<provider>#<providerUserId>` / `#META` so one provider
/// identity links to one user only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedAccountRecord {
    pub user_id: UserId,
    pub provider: String,
    pub provider_user_id: String,
    pub created_at: String,
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
            key_pair: None,
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

fn link_sk(provider: &str, provider_user_id: &str) -> String {
    format!("LINK#{provider}#{provider_user_id}")
}

fn link_claim_pk(provider: &str, provider_user_id: &str) -> String {
    format!("ACCOUNTLINK#{provider}#{provider_user_id}")
}

impl UserRepo<'_> {
    /// Stores a new key pair on the user (replacing any previous one). `NotFound` if the user does
    /// not exist.
    pub async fn set_key_pair(&self, id: &UserId, kp: &UserKeyPair) -> Result<(), StoreError> {
        let value: AttributeValue = serde_dynamo::to_attribute_value(kp)
            .map_err(|e| StoreError::decode("SetUserKeyPair", e))?;
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET keyPair = :kp, version = version + :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":kp", value)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(|e| StoreError::backend("SetUserKeyPair", e));
        match res {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::NotFound {
                op: "SetUserKeyPair",
            }),
            Err(e) => Err(e),
        }
    }

    /// Links a provider identity to the user. `Conflict` if that identity is linked already (to
    /// this user or another one), `NotFound` if the user does not exist.
    pub async fn link_account(&self, rec: &LinkedAccountRecord) -> Result<(), StoreError> {
        if self.get(&rec.user_id).await?.is_none() {
            return Err(StoreError::NotFound { op: "LinkAccount" });
        }
        let table = self.store.table();
        let row = to_item(
            "LinkAccount",
            rec,
            &[
                ("pk", pk(&rec.user_id)),
                ("sk", link_sk(&rec.provider, &rec.provider_user_id)),
            ],
        )?;
        let claim = to_item(
            "LinkAccount",
            rec,
            &[
                ("pk", link_claim_pk(&rec.provider, &rec.provider_user_id)),
                ("sk", META.to_owned()),
            ],
        )?;
        let user = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(key(pk(&rec.user_id), META)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| crate::memberships::builder_err("LinkAccount", e))?;
        self.store
            .client()
            .transact_write_items()
            .transact_items(crate::orgs::put_new_tx(table, "LinkAccount", row)?)
            .transact_items(crate::orgs::put_new_tx(table, "LinkAccount", claim)?)
            .transact_items(TransactWriteItem::builder().condition_check(user).build())
            .send()
            .await
            .map_err(|e| StoreError::backend("LinkAccount", e))?;
        Ok(())
    }

    /// Removes a link of the user and its claim. `NotFound` if the user has no such link.
    pub async fn unlink_account(
        &self,
        user: &UserId,
        provider: &str,
        provider_user_id: &str,
    ) -> Result<(), StoreError> {
        let table = self.store.table();
        let del = |k, cond: &str| -> Result<TransactWriteItem, StoreError> {
            Delete::builder()
                .table_name(table)
                .set_key(Some(k))
                .condition_expression(cond)
                .expression_attribute_values(":u", s(user.to_string()))
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(|e| crate::memberships::builder_err("UnlinkAccount", e))
        };
        let res = self
            .store
            .client()
            .transact_write_items()
            .transact_items(del(
                key(pk(user), link_sk(provider, provider_user_id)),
                "attribute_exists(pk) AND userId = :u",
            )?)
            .transact_items(del(
                key(link_claim_pk(provider, provider_user_id), META),
                "attribute_not_exists(pk) OR userId = :u",
            )?)
            .send()
            .await
            .map_err(|e| StoreError::backend("UnlinkAccount", e));
        match res {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::NotFound {
                op: "UnlinkAccount",
            }),
            Err(e) => Err(e),
        }
    }

    /// The user's linked accounts, sorted by provider, then provider user id.
    pub async fn linked_accounts(
        &self,
        user: &UserId,
    ) -> Result<Vec<LinkedAccountRecord>, StoreError> {
        let mut out: Vec<LinkedAccountRecord> = Vec::new();
        let mut start: Option<crate::item::Item> = None;
        loop {
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(pk(user)))
                .expression_attribute_values(":p", s("LINK#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend("ListLinkedAccounts", e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item("ListLinkedAccounts", i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }
}
