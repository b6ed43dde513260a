//! Organization roles: `ORG#<orgId>` / `ROLE#<roleId>`, plus the global roles every organization has.

use aws_sdk_dynamodb::types::TransactWriteItem;
use cove_api_types::ids::OrganizationId;
use serde::{Deserialize, Serialize};

use crate::item::{Item, key, n, s, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRecord {
    /// UUID.
    pub id: String,
    /// `None` for a global role.
    pub organization_id: Option<OrganizationId>,
    pub name: String,
    pub description: String,
    /// Permission wire names.
    pub permissions: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

impl RoleRecord {
    pub fn is_global(&self) -> bool {
        self.organization_id.is_none()
    }
}

/// The built-in roles (Daytona's global roles): `(id, name, description, permissions)`.
pub const GLOBAL_ROLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "00000000-0000-4000-8000-000000000001",
        "Developer",
        "Grants the ability to create sandboxes and keys in the organization",
        &["write:sandboxes"],
    ),
    (
        "00000000-0000-4000-8000-000000000002",
        "Sandboxes Admin",
        "Grants admin access to sandboxes in the organization",
        &["write:sandboxes", "delete:sandboxes"],
    ),
    (
        "00000000-0000-4000-8000-000000000003",
        "Snapshots Admin",
        "Grants admin access to snapshots in the organization",
        &["write:snapshots", "delete:snapshots"],
    ),
    (
        "00000000-0000-4000-8000-000000000004",
        "Registries Admin",
        "Grants admin access to registries in the organization",
        &["write:registries", "delete:registries"],
    ),
    (
        "00000000-0000-4000-8000-000000000005",
        "Volumes Admin",
        "Grants admin access to volumes in the organization",
        &["read:volumes", "write:volumes", "delete:volumes"],
    ),
    (
        "00000000-0000-4000-8000-000000000006",
        "Auditor",
        "Grants access to audit logs in the organization",
        &["read:audit_logs"],
    ),
];

/// The global role with this id, if any.
pub fn global(id: &str) -> Option<RoleRecord> {
    GLOBAL_ROLES
        .iter()
        .find(|r| r.0 == id)
        .map(|(id, name, desc, perms)| RoleRecord {
            id: (*id).to_owned(),
            organization_id: None,
            name: (*name).to_owned(),
            description: (*desc).to_owned(),
            permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
            created_at: cove_api_types::orgs::EPOCH.to_owned(),
            updated_at: cove_api_types::orgs::EPOCH.to_owned(),
            version: 1,
        })
}

/// Every global role.
pub fn globals() -> Vec<RoleRecord> {
    GLOBAL_ROLES.iter().filter_map(|r| global(r.0)).collect()
}

fn sk(id: &str) -> String {
    format!("ROLE#{id}")
}

fn item(org: &OrganizationId, rec: &RoleRecord) -> Result<Item, StoreError> {
    to_item(
        "PutRole",
        rec,
        &[("pk", crate::orgs::pk(org)), ("sk", sk(&rec.id))],
    )
}

pub struct RoleRepo<'a> {
    pub(crate) store: &'a Store,
}

impl RoleRepo<'_> {
    /// A role of the organization, or a global role.
    pub async fn get(
        &self,
        org: &OrganizationId,
        id: &str,
    ) -> Result<Option<RoleRecord>, StoreError> {
        if let Some(g) = global(id) {
            return Ok(Some(g));
        }
        self.store
            .get_record("GetRole", key(crate::orgs::pk(org), sk(id)))
            .await
    }

    /// The organization's own roles (not the global ones).
    pub async fn list(&self, org: &OrganizationId) -> Result<Vec<RoleRecord>, StoreError> {
        self.store
            .query_all("ListRoles", &Query::prefix(crate::orgs::pk(org), "ROLE#"))
            .await
    }

    /// Creates the role together with its name lock (`ROLENAME#<lowercased name>`), in one
    /// transaction that also requires the organization to be live. `Conflict { Exists }` if the id
    /// or the name (case-insensitively) is taken, `Conflict { OrganizationDeleting }` if the
    /// organization is gone or being deleted.
    pub async fn create(&self, org: &OrganizationId, rec: &RoleRecord) -> Result<(), StoreError> {
        self.store
            .put_new_in_org(
                "CreateRole",
                org,
                vec![item(org, rec)?, name_lock(org, &rec.name, &rec.id)?],
            )
            .await
    }

    /// Replaces a role still at `rec.version - 1` (`Conflict { Changed }`); `Conflict { Exists }`
    /// if the new name is taken, `Conflict { OrganizationDeleting }` if the organization is being
    /// deleted. A rename moves the name lock in the same transaction.
    pub async fn update(
        &self,
        org: &OrganizationId,
        old_name: &str,
        rec: &RoleRecord,
    ) -> Result<(), StoreError> {
        const OP: &str = "UpdateRole";
        let store = self.store;
        let cond = Cond::new("attribute_exists(pk) AND version = :v")
            .value(":v", n(rec.version.saturating_sub(1)));
        let mut t = Tx::new(OP)
            .with(
                Fail::Conflict(Conflict::Changed),
                tx::put(store, OP, item(org, rec)?, cond)?,
            )
            .with(
                Fail::Conflict(Conflict::OrganizationDeleting),
                crate::orgs::live_check(store, OP, org)?,
            );
        if lock_sk(old_name) != lock_sk(&rec.name) {
            t.push(
                Fail::Conflict(Conflict::Exists),
                tx::put_new(store, OP, name_lock(org, &rec.name, &rec.id)?)?,
            );
            t.push(
                Fail::Conflict(Conflict::Changed),
                release_lock(store, org, old_name, &rec.id)?,
            );
        }
        t.commit(store).await
    }

    /// Deletes the role and its name lock. `NotFound` if the role does not exist.
    pub async fn delete(&self, org: &OrganizationId, id: &str) -> Result<(), StoreError> {
        const OP: &str = "DeleteRole";
        let missing = Fail::NotFound(Entity::Role);
        let row = key(crate::orgs::pk(org), sk(id));
        let Some(rec) = self.store.get_record::<RoleRecord>(OP, row.clone()).await? else {
            return Err(missing.into_error(OP));
        };
        Tx::new(OP)
            .with(
                missing,
                tx::delete(self.store, OP, row, Some(Cond::present()))?,
            )
            .with(missing, release_lock(self.store, org, &rec.name, id)?)
            .commit(self.store)
            .await
    }
}

/// The sort key of the lock that keeps role names unique per organization (case-insensitively).
fn lock_sk(name: &str) -> String {
    format!("ROLENAME#{}", name.to_lowercase())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NameLock<'a> {
    role_id: &'a str,
}

fn name_lock(org: &OrganizationId, name: &str, role_id: &str) -> Result<Item, StoreError> {
    to_item(
        "PutRoleNameLock",
        &NameLock { role_id },
        &[("pk", crate::orgs::pk(org)), ("sk", lock_sk(name))],
    )
}

/// Deletes the name lock of `name` if it is this role's (roles written before locks existed have
/// none; a lock held by another role is left alone).
fn release_lock(
    store: &Store,
    org: &OrganizationId,
    name: &str,
    role_id: &str,
) -> Result<TransactWriteItem, StoreError> {
    tx::delete(
        store,
        "ReleaseRoleNameLock",
        key(crate::orgs::pk(org), lock_sk(name)),
        Some(Cond::new("attribute_not_exists(pk) OR roleId = :id").value(":id", s(role_id))),
    )
}
