//! Users: `USER#<id>` / `#META`, and first-sight provisioning with a personal organization.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{META, from_item, key, s, to_item};
use crate::memberships::{MembershipRecord, OrgRole};
use crate::orgs::OrgRecord;
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

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
        self.provision(&user, &org, &member).await
    }

    /// User, organization and owner membership in one transaction; when someone provisioned the
    /// same user concurrently, theirs won and is what this answers.
    async fn provision(
        &self,
        user: &UserRecord,
        org: &OrgRecord,
        member: &MembershipRecord,
    ) -> Result<UserRecord, StoreError> {
        const OP: &str = "ProvisionUser";
        let store = self.store;
        let user_item = to_item(OP, user, &[("pk", pk(&user.id)), ("sk", META.to_owned())])?;
        let exists = Fail::Conflict(Conflict::Exists);
        let res = Tx::new(OP)
            .with(exists, tx::put_new(store, OP, user_item)?)
            .with(exists, tx::put_new(store, OP, crate::orgs::item(org)?)?)
            .with(
                exists,
                tx::put_new(store, OP, crate::memberships::item(member)?)?,
            )
            .commit(store)
            .await;
        match res {
            Ok(()) => Ok(user.clone()),
            Err(StoreError::Conflict { .. }) => self
                .get(&user.id)
                .await?
                .ok_or(StoreError::not_found(OP, Entity::User)),
            Err(e) => Err(e),
        }
    }
}

impl UserRepo<'_> {
    /// Every user, sorted by id. A filtered scan of the table: for system-admin listings only.
    pub async fn list(&self) -> Result<Vec<UserRecord>, StoreError> {
        const OP: &str = "ListUsers";
        let values = HashMap::from([(":u".to_owned(), s("USER#")), (":meta".to_owned(), s(META))]);
        let mut out: Vec<UserRecord> = self
            .store
            .scan_all(OP, Some(("begins_with(pk, :u) AND sk = :meta", values)))
            .await?
            .into_iter()
            .map(|i| from_item(OP, i))
            .collect::<Result<_, _>>()?;
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
        const OP: &str = "SetUserKeyPair";
        let value: AttributeValue =
            serde_dynamo::to_attribute_value(kp).map_err(|e| StoreError::decode(OP, e))?;
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
            .map_err(|e| StoreError::backend(OP, e));
        match res {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::not_found(OP, Entity::User)),
            Err(e) => Err(e),
        }
    }

    /// Links a provider identity to the user. `Conflict { Exists }` if that identity is linked
    /// already (to this user or another one), `NotFound` if the user does not exist.
    pub async fn link_account(&self, rec: &LinkedAccountRecord) -> Result<(), StoreError> {
        const OP: &str = "LinkAccount";
        let missing = Fail::NotFound(Entity::User);
        if self.get(&rec.user_id).await?.is_none() {
            return Err(missing.into_error(OP));
        }
        let store = self.store;
        let link = link_sk(&rec.provider, &rec.provider_user_id);
        let row = to_item(OP, rec, &[("pk", pk(&rec.user_id)), ("sk", link)])?;
        let claim_pk = link_claim_pk(&rec.provider, &rec.provider_user_id);
        let claim = to_item(OP, rec, &[("pk", claim_pk), ("sk", META.to_owned())])?;
        let exists = Fail::Conflict(Conflict::Exists);
        let user = key(pk(&rec.user_id), META);
        Tx::new(OP)
            .with(exists, tx::put_new(store, OP, row)?)
            .with(exists, tx::put_new(store, OP, claim)?)
            .with(missing, tx::check(store, OP, user, Cond::present())?)
            .commit(store)
            .await
    }

    /// Removes a link of the user and its claim. `NotFound` if the user has no such link.
    pub async fn unlink_account(
        &self,
        user: &UserId,
        provider: &str,
        provider_user_id: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "UnlinkAccount";
        let store = self.store;
        let cond = |expr: &str| Some(Cond::new(expr).value(":u", s(user.to_string())));
        let missing = Fail::NotFound(Entity::LinkedAccount);
        let row = key(pk(user), link_sk(provider, provider_user_id));
        let claim = key(link_claim_pk(provider, provider_user_id), META);
        Tx::new(OP)
            .with(
                missing,
                tx::delete(store, OP, row, cond("attribute_exists(pk) AND userId = :u"))?,
            )
            .with(
                missing,
                tx::delete(
                    store,
                    OP,
                    claim,
                    cond("attribute_not_exists(pk) OR userId = :u"),
                )?,
            )
            .commit(store)
            .await
    }

    /// The user's linked accounts, sorted by provider, then provider user id.
    pub async fn linked_accounts(
        &self,
        user: &UserId,
    ) -> Result<Vec<LinkedAccountRecord>, StoreError> {
        self.store
            .query_all("ListLinkedAccounts", &Query::prefix(pk(user), "LINK#"))
            .await
    }
}
