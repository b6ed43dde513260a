//! Organization roles: `ORG#<orgId>` / `ROLE#<roleId>`, plus the global roles every organization has.

use aws_sdk_dynamodb::types::AttributeValue;
use cove_api_types::ids::OrganizationId;
use serde::{Deserialize, Serialize};

use crate::item::{Item, from_item, key, s, to_item};
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

    pub async fn create(&self, org: &OrganizationId, rec: &RoleRecord) -> Result<(), StoreError> {
        self.store.put_new("CreateRole", item(org, rec)?).await?;
        Ok(())
    }

    /// Replaces a role still at `rec.version - 1`; `Conflict` otherwise.
    pub async fn update(&self, org: &OrganizationId, rec: &RoleRecord) -> Result<(), StoreError> {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item(org, rec)?))
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(
                ":v",
                AttributeValue::N(rec.version.saturating_sub(1).to_string()),
            )
            .send()
            .await
            .map_err(|e| StoreError::backend("UpdateRole", e))?;
        Ok(())
    }

    /// `NotFound` if the role does not exist.
    pub async fn delete(&self, org: &OrganizationId, id: &str) -> Result<(), StoreError> {
        let res = self
            .store
            .client()
            .delete_item()
            .table_name(self.store.table())
            .set_key(Some(key(crate::orgs::pk(org), sk(id))))
            .condition_expression("attribute_exists(pk)")
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
