//! Organization roles: `ORG#<orgId>` / `ROLE#<roleId>`, plus the global roles every organization has.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use cove_api_types::ids::OrganizationId;
use serde::{Deserialize, Serialize};

use crate::item::{Item, from_item, key, s, to_item};
use crate::memberships::builder_err;
use crate::{Store, StoreError};

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
                .expression_attribute_values(":p", s("ROLE#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend("ListRoles", e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item("ListRoles", i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Creates the role together with its name lock (`ROLENAME#<lowercased name>`), in one
    /// transaction that also requires the organization to be live. `Conflict` if the id or the
    /// name (case-insensitively) is taken, or the organization is gone or being deleted.
    pub async fn create(&self, org: &OrganizationId, rec: &RoleRecord) -> Result<(), StoreError> {
        self.store
            .put_new_in_org(
                "CreateRole",
                org,
                vec![item(org, rec)?, name_lock(org, &rec.name, &rec.id)?],
            )
            .await
    }

    /// Replaces a role still at `rec.version - 1`; `Conflict` otherwise, or if the new name is
    /// taken, or the organization is being deleted. A rename moves the name lock in the same
    /// transaction.
    pub async fn update(
        &self,
        org: &OrganizationId,
        old_name: &str,
        rec: &RoleRecord,
    ) -> Result<(), StoreError> {
        let table = self.store.table();
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item(org, rec)?))
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(
                ":v",
                AttributeValue::N(rec.version.saturating_sub(1).to_string()),
            )
            .build()
            .map_err(|e| builder_err("UpdateRole", e))?;
        let mut tx = self
            .store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(crate::orgs::live_check(table, org)?);
        if lock_sk(old_name) != lock_sk(&rec.name) {
            tx = tx
                .transact_items(crate::orgs::put_new_tx(
                    table,
                    "UpdateRole",
                    name_lock(org, &rec.name, &rec.id)?,
                )?)
                .transact_items(release_lock(table, org, old_name, &rec.id)?);
        }
        tx.send()
            .await
            .map_err(|e| StoreError::backend("UpdateRole", e))?;
        Ok(())
    }

    /// Deletes the role and its name lock. `NotFound` if the role does not exist.
    pub async fn delete(&self, org: &OrganizationId, id: &str) -> Result<(), StoreError> {
        let Some(rec) = self
            .store
            .get_record::<RoleRecord>("DeleteRole", key(crate::orgs::pk(org), sk(id)))
            .await?
        else {
            return Err(StoreError::NotFound { op: "DeleteRole" });
        };
        let table = self.store.table();
        let del = Delete::builder()
            .table_name(table)
            .set_key(Some(key(crate::orgs::pk(org), sk(id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| builder_err("DeleteRole", e))?;
        let res = self
            .store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(del).build())
            .transact_items(release_lock(table, org, &rec.name, id)?)
            .send()
            .await
            .map_err(|e| StoreError::backend("DeleteRole", e));
        match res {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::NotFound { op: "DeleteRole" }),
            Err(e) => Err(e),
        }
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
    table: &str,
    org: &OrganizationId,
    name: &str,
    role_id: &str,
) -> Result<TransactWriteItem, StoreError> {
    Delete::builder()
        .table_name(table)
        .set_key(Some(key(crate::orgs::pk(org), lock_sk(name))))
        .condition_expression("attribute_not_exists(pk) OR roleId = :id")
        .expression_attribute_values(":id", s(role_id))
        .build()
        .map(|d| TransactWriteItem::builder().delete(d).build())
        .map_err(|e| builder_err("ReleaseRoleNameLock", e))
}
