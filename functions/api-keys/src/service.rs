//! API key rules, independent of HTTP.

use std::collections::BTreeSet;

use cove_api_types::ApiError;
use cove_api_types::api_keys::{ApiKeyList, ApiKeyResponse, CreateApiKey, mask_key};
use cove_api_types::ids::UserId;
use cove_api_types::permissions::Permission;
use cove_api_types::time::{format_rfc3339, now_rfc3339, parse_rfc3339};
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Credential, Env, authorize};
use cove_store::api_keys::ApiKeyRecord;
use cove_store::bootstrap::ADMIN_USER_ID;
use cove_store::{Conflict, StoreError};

const MAX_NAME_LEN: usize = 255;

/// Key management needs a JWT, or an API key that holds `manage:api_keys`.
fn require_management(ctx: &AuthContext) -> Result<(), ApiError> {
    match &ctx.credential {
        Credential::Jwt => Ok(()),
        Credential::ApiKey { permissions, .. }
            if permissions.contains(&Permission::ManageApiKeys) =>
        {
            Ok(())
        }
        Credential::ApiKey { .. } => Err(ApiError::forbidden(
            "API keys can only be managed with a JWT or an API key with the manage:api_keys permission",
        )),
    }
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "name must be at most {MAX_NAME_LEN} characters"
        )));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(ApiError::bad_request(
            "name must not contain '/' or control characters",
        ));
    }
    Ok(())
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("API key with name {name} not found"))
}

fn list_view(rec: ApiKeyRecord) -> ApiKeyList {
    ApiKeyList {
        value: mask_key(&rec.key_prefix, &rec.key_suffix),
        permissions: rec
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect(),
        name: rec.name,
        created_at: rec.created_at,
        last_used_at: rec.last_used_at,
        expires_at: rec.expires_at,
        user_id: rec.user_id,
        organization_id: rec.organization_id,
    }
}

/// A key's expiry: a valid ISO-8601 time in the future (a key born expired is a mistake).
fn expiry(s: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let t = parse_rfc3339(s)
        .ok_or_else(|| ApiError::bad_request("expiresAt must be an ISO-8601 date"))?;
    if t <= time::OffsetDateTime::now_utc() {
        return Err(ApiError::bad_request("expiresAt must be in the future"));
    }
    Ok(Some(format_rfc3339(t)))
}

/// Creates a key holding the requested permissions (each held by the caller). The body is read
/// only once the caller may manage keys.
pub async fn create(
    env: &Env,
    ctx: &AuthContext,
    body: JsonBody<'_, CreateApiKey>,
) -> Result<ApiKeyResponse, ApiError> {
    require_management(ctx)?;
    let body = body.parse()?;
    let requested: BTreeSet<Permission> = body.permissions.into_iter().collect();
    authorize(env, ctx, Action::Grant(requested.clone())).await?;
    let name = body.name.trim().to_owned();
    validate_name(&name)?;
    let expires_at = expiry(body.expires_at.as_deref())?;
    let key = cove_store::keys::generate().map_err(|e| {
        tracing::error!(error = %e, "no randomness for a new API key");
        ApiError::internal()
    })?;
    let rec = ApiKeyRecord {
        organization_id: ctx.organization_id.clone(),
        user_id: ctx.user_id.clone(),
        name: name.clone(),
        key_hash: key.hash,
        key_prefix: key.prefix,
        key_suffix: key.suffix,
        permissions: requested.iter().map(|p| p.as_str().to_owned()).collect(),
        created_at: now_rfc3339(),
        expires_at,
        last_used_at: None,
        version: 1,
    };
    match env.store.api_keys().create(&rec).await {
        Ok(()) => {}
        Err(StoreError::Conflict {
            conflict: Conflict::Exists,
            ..
        }) => {
            return Err(ApiError::conflict(format!(
                "API key with name {name} already exists"
            )));
        }
        Err(e) => return Err(e.api()),
    }
    tracing::info!(org = %rec.organization_id, user = %rec.user_id, name = %rec.name, "API key created");
    Ok(ApiKeyResponse {
        name: rec.name,
        value: key.value,
        created_at: rec.created_at,
        permissions: requested.into_iter().collect(),
        expires_at: rec.expires_at,
    })
}

/// Owners see every key of the organization; members see their own.
pub async fn list(env: &Env, ctx: &AuthContext) -> Result<Vec<ApiKeyList>, ApiError> {
    require_management(ctx)?;
    let user = (!ctx.is_owner()).then_some(&ctx.user_id);
    let keys = env
        .store
        .api_keys()
        .list(&ctx.organization_id, user)
        .await
        .api()?;
    Ok(keys.into_iter().map(list_view).collect())
}

pub async fn get(env: &Env, ctx: &AuthContext, name: &str) -> Result<ApiKeyList, ApiError> {
    require_management(ctx)?;
    let rec = env
        .store
        .api_keys()
        .get(&ctx.organization_id, &ctx.user_id, name)
        .await
        .api()?;
    rec.map(list_view).ok_or_else(|| not_found(name))
}

/// The key the request was authenticated with.
pub fn current(ctx: &AuthContext) -> Result<ApiKeyList, ApiError> {
    let Credential::ApiKey { key, .. } = &ctx.credential else {
        return Err(ApiError::bad_request(
            "The request was not authenticated with an API key",
        ));
    };
    let key = key.as_ref().clone();
    Ok(ApiKeyList {
        value: mask_key(&key.key_prefix, &key.key_suffix),
        permissions: key
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect(),
        name: key.name,
        created_at: key.created_at,
        last_used_at: key.last_used_at,
        expires_at: key.expires_at,
        user_id: key.user_id,
        organization_id: key.organization_id,
    })
}

/// `DELETE /api-keys/{userId}/{name}`: who may delete another user's keys is checked before the
/// user id is read.
pub async fn delete_for(
    env: &Env,
    ctx: &AuthContext,
    user: &str,
    name: &str,
) -> Result<(), ApiError> {
    require_management(ctx)?;
    if user != ctx.user_id.as_str() && !ctx.is_owner() {
        return Err(other_users_keys());
    }
    let user = UserId::parse(user).map_err(|e| ApiError::bad_request(e.to_string()))?;
    delete(env, ctx, &user, name).await
}

fn other_users_keys() -> ApiError {
    ApiError::forbidden("Only organization owners can delete API keys of other users")
}

pub async fn delete(
    env: &Env,
    ctx: &AuthContext,
    user: &UserId,
    name: &str,
) -> Result<(), ApiError> {
    require_management(ctx)?;
    if *user != ctx.user_id && !ctx.is_owner() {
        return Err(other_users_keys());
    }
    keep_last_admin_key(env, ctx, user, name).await?;
    match env
        .store
        .api_keys()
        .delete(&ctx.organization_id, user, name)
        .await
    {
        Ok(()) => {
            tracing::info!(org = %ctx.organization_id, user = %user, name, "API key deleted");
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Err(not_found(name)),
        Err(e) => Err(e.api()),
    }
}

/// 409 when `name` is the bootstrap admin's last usable key: the bootstrap admin has no other
/// credential (no identity provider knows it), so deleting it would lock the platform's
/// administration out until `cove rotate-admin-key` is run on the host.
async fn keep_last_admin_key(
    env: &Env,
    ctx: &AuthContext,
    user: &UserId,
    name: &str,
) -> Result<(), ApiError> {
    if user.as_str() != ADMIN_USER_ID {
        return Ok(());
    }
    let keys = env
        .store
        .api_keys()
        .list(&ctx.organization_id, Some(user))
        .await
        .api()?;
    let usable = |k: &&ApiKeyRecord| k.expires_at.as_deref().is_none_or(|e| !expired(e));
    let deleting = keys.iter().filter(usable).any(|k| k.name == name);
    let others = keys
        .iter()
        .filter(usable)
        .filter(|k| k.name != name)
        .count();
    if deleting && others == 0 {
        return Err(ApiError::conflict(format!(
            "API key {name} is the last credential of the bootstrap admin ({ADMIN_USER_ID}): \
             create another admin key first (or replace it with `cove rotate-admin-key`)"
        )));
    }
    Ok(())
}

fn expired(at: &str) -> bool {
    parse_rfc3339(at).is_none_or(|t| t <= time::OffsetDateTime::now_utc())
}
