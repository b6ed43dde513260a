//! First start: the bootstrap organization, system-admin user and admin API key.

use cove_api_types::ids::UserId;
use cove_api_types::permissions::Permission;
use serde::{Deserialize, Serialize};

use crate::api_keys::ApiKeyRecord;
use crate::item::{from_item, key, to_item};
use crate::users::{NewUser, SystemRole};
use crate::{Entity, Store, StoreError, keys};

/// The id of the user `cove` creates on first start.
pub const ADMIN_USER_ID: &str = "cove-admin";
/// The name of the admin API key.
pub const ADMIN_KEY_NAME: &str = "cove-admin";

/// What bootstrapping did.
#[derive(Debug, Clone)]
pub struct BootstrapOutcome {
    /// The admin key when this call created it (first start); `None` afterwards.
    pub api_key: Option<String>,
    pub organization_id: String,
    pub user_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    user_id: UserId,
    created_at: String,
}

fn marker_key() -> crate::item::Item {
    key("SYSTEM", "BOOTSTRAP")
}

/// Creates the admin user (with its personal organization) and an admin key, once per table.
pub async fn ensure_admin(store: &Store) -> Result<BootstrapOutcome, StoreError> {
    let user_id = UserId::parse(ADMIN_USER_ID)
        .map_err(|_| StoreError::not_found("Bootstrap", Entity::Admin))?;
    let user = store
        .users()
        .get_or_provision(NewUser {
            id: user_id.clone(),
            name: "Cove Admin".into(),
            email: "admin@cove.local".into(),
            email_verified: true,
            role: SystemRole::Admin,
        })
        .await?;
    let marker = Marker {
        user_id: user_id.clone(),
        created_at: cove_api_types::time::now_rfc3339(),
    };
    let claimed = store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(to_item(
            "Bootstrap",
            &marker,
            &[("pk", "SYSTEM".to_owned()), ("sk", "BOOTSTRAP".to_owned())],
        )?))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| StoreError::backend("Bootstrap", e));
    let api_key = match claimed {
        Ok(_) => Some(create_admin_key(store, &user.personal_organization_id, &user_id).await?),
        Err(StoreError::Conflict { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(BootstrapOutcome {
        api_key,
        organization_id: user.personal_organization_id.to_string(),
        user_id: user_id.to_string(),
    })
}

/// Replaces the admin key with a new one and returns it; the old key stops working at once.
pub async fn rotate_admin_key(store: &Store) -> Result<String, StoreError> {
    let out = store
        .client()
        .get_item()
        .table_name(store.table())
        .set_key(Some(marker_key()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::backend("RotateAdminKey", e))?;
    let Some(item) = out.item else {
        return ensure_admin(store)
            .await?
            .api_key
            .ok_or(StoreError::not_found("RotateAdminKey", Entity::Admin));
    };
    let marker: Marker = from_item("RotateAdminKey", item)?;
    let user = store
        .users()
        .get(&marker.user_id)
        .await?
        .ok_or(StoreError::not_found("RotateAdminKey", Entity::User))?;
    match store
        .api_keys()
        .delete(&user.personal_organization_id, &user.id, ADMIN_KEY_NAME)
        .await
    {
        Ok(()) | Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    create_admin_key(store, &user.personal_organization_id, &user.id).await
}

async fn create_admin_key(
    store: &Store,
    org: &cove_api_types::ids::OrganizationId,
    user: &UserId,
) -> Result<String, StoreError> {
    let generated = keys::generate().map_err(|e| StoreError::random("Bootstrap", e))?;
    let rec = ApiKeyRecord {
        organization_id: org.clone(),
        user_id: user.clone(),
        name: ADMIN_KEY_NAME.into(),
        key_hash: generated.hash.clone(),
        key_prefix: generated.prefix.clone(),
        key_suffix: generated.suffix.clone(),
        permissions: Permission::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        created_at: cove_api_types::time::now_rfc3339(),
        expires_at: None,
        last_used_at: None,
        version: 1,
    };
    store.api_keys().create(&rec).await?;
    Ok(generated.value)
}
