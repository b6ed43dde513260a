//! Users: the caller itself, user administration (system admins), linked accounts, key pairs.

use std::collections::BTreeSet;

use cove_api_types::ApiError;
use cove_api_types::ids::UserId;
use cove_api_types::orgs::{AccountProvider, CreateLinkedAccount, CreateUser, User};
use cove_api_types::time::now_rfc3339;
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::users::{LinkedAccountRecord, NewUser, SystemRole, UserRecord};

use super::invitations::validate_email;
use super::views::user_view;
use super::{require_jwt, validate_name};

/// The identity providers whose accounts can be linked: `(name, display name)`.
pub const ACCOUNT_PROVIDERS: &[(&str, &str)] = &[
    ("github", "GitHub"),
    ("google-oauth2", "Google"),
    ("gitlab", "GitLab"),
    ("bitbucket", "Bitbucket"),
];

/// A provider user id goes into a key: bounded, printable, no `#`.
const MAX_PROVIDER_USER_ID_LEN: usize = 255;

fn user_not_found(id: &UserId) -> ApiError {
    ApiError::not_found(format!("User with ID {id} not found"))
}

/// 403 unless the caller is a system admin with a user session.
async fn require_admin(env: &Env, ctx: &AuthContext) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    authorize(env, ctx, Action::SystemAdmin).await
}

async fn me(env: &Env, ctx: &AuthContext) -> Result<UserRecord, ApiError> {
    env.store
        .users()
        .get(&ctx.user_id)
        .await
        .api()?
        .ok_or_else(ApiError::invalid_credentials)
}

pub async fn user_me(env: &Env, ctx: &AuthContext) -> Result<User, ApiError> {
    require_jwt(ctx)?;
    Ok(user_view(me(env, ctx).await?))
}

/// A path's user id, read once the caller may use the route.
fn user_id(id: &str) -> Result<UserId, ApiError> {
    UserId::parse(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A user by id: the caller itself, or anyone for a system admin.
pub async fn user_get(env: &Env, ctx: &AuthContext, id: &str) -> Result<User, ApiError> {
    require_jwt(ctx)?;
    if id != ctx.user_id.as_str() {
        authorize(env, ctx, Action::SystemAdmin).await?;
    }
    let id = &user_id(id)?;
    env.store
        .users()
        .get(id)
        .await
        .api()?
        .map(user_view)
        .ok_or_else(|| user_not_found(id))
}

pub async fn user_create(
    env: &Env,
    ctx: &AuthContext,
    body: JsonBody<'_, CreateUser>,
) -> Result<User, ApiError> {
    require_admin(env, ctx).await?;
    let body = body.parse()?;
    let name = validate_name("name", &body.name)?;
    let email = match body.email.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(e) => validate_email(e)?,
        None => String::new(),
    };
    let role = match body.role.as_deref() {
        None | Some("user") => SystemRole::User,
        Some("admin") => SystemRole::Admin,
        Some(_) => return Err(ApiError::bad_request("role must be one of: admin, user")),
    };
    let id = body.id.unwrap_or_else(UserId::new_random);
    if env.store.users().get(&id).await.api()?.is_some() {
        return Err(ApiError::conflict(format!(
            "User with ID {id} already exists"
        )));
    }
    let new = NewUser {
        id,
        name,
        email,
        email_verified: body.email_verified.unwrap_or(false),
        role,
    };
    Ok(user_view(
        env.store.users().get_or_provision(new).await.api()?,
    ))
}

pub async fn user_list(env: &Env, ctx: &AuthContext) -> Result<Vec<User>, ApiError> {
    require_admin(env, ctx).await?;
    Ok(env
        .store
        .users()
        .list()
        .await
        .api()?
        .into_iter()
        .map(user_view)
        .collect())
}

/// Replaces the user's key pair with a fresh one (system admin). The private half stays in the store.
pub async fn regenerate_key_pair(env: &Env, ctx: &AuthContext, id: &str) -> Result<(), ApiError> {
    require_admin(env, ctx).await?;
    let id = &user_id(id)?;
    let kp = crate::keypair::generate(now_rfc3339())?;
    match env.store.users().set_key_pair(id, &kp).await {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => return Err(user_not_found(id)),
        Err(e) => return Err(e.api()),
    }
    tracing::info!(user = %id, admin = %ctx.user_id, "user key pair regenerated");
    Ok(())
}

fn account_provider(provider: &str) -> Result<&'static str, ApiError> {
    ACCOUNT_PROVIDERS
        .iter()
        .find(|(name, _)| *name == provider)
        .map(|(name, _)| *name)
        .ok_or_else(|| {
            let names: Vec<&str> = ACCOUNT_PROVIDERS.iter().map(|(n, _)| *n).collect();
            ApiError::bad_request(format!("provider must be one of: {}", names.join(", ")))
        })
}

fn provider_user_id(id: &str) -> Result<&str, ApiError> {
    if id.is_empty()
        || id.len() > MAX_PROVIDER_USER_ID_LEN
        || id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '#')
    {
        return Err(ApiError::bad_request(format!(
            "userId must be 1 to {MAX_PROVIDER_USER_ID_LEN} printable characters without spaces or '#'"
        )));
    }
    Ok(id)
}

/// Links the caller to an account at an identity provider. 409 if that account is linked already
/// (to the caller or anyone else).
pub async fn link_account(
    env: &Env,
    ctx: &AuthContext,
    body: JsonBody<'_, CreateLinkedAccount>,
) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    let body = body.parse()?;
    let provider = account_provider(body.provider.trim())?;
    let puid = provider_user_id(body.user_id.trim())?;
    me(env, ctx).await?;
    let rec = LinkedAccountRecord {
        user_id: ctx.user_id.clone(),
        provider: provider.to_owned(),
        provider_user_id: puid.to_owned(),
        created_at: now_rfc3339(),
    };
    match env.store.users().link_account(&rec).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::conflict(format!(
                "The {provider} account {puid} is already linked"
            )));
        }
        Err(StoreError::NotFound { .. }) => return Err(ApiError::invalid_credentials()),
        Err(e) => return Err(e.api()),
    }
    tracing::info!(user = %ctx.user_id, provider, "account linked");
    Ok(())
}

/// Removes one of the caller's links. 404 if the caller has no such link.
pub async fn unlink_account(
    env: &Env,
    ctx: &AuthContext,
    provider: &str,
    puid: &str,
) -> Result<(), ApiError> {
    require_jwt(ctx)?;
    let provider = account_provider(provider)?;
    let puid = provider_user_id(puid)?;
    match env
        .store
        .users()
        .unlink_account(&ctx.user_id, provider, puid)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!(
                "No linked {provider} account {puid}"
            )));
        }
        Err(e) => return Err(e.api()),
    }
    tracing::info!(user = %ctx.user_id, provider, "account unlinked");
    Ok(())
}

/// The providers whose accounts can be linked, and whether the caller has linked one.
pub async fn account_providers(
    env: &Env,
    ctx: &AuthContext,
) -> Result<Vec<AccountProvider>, ApiError> {
    require_jwt(ctx)?;
    let linked: BTreeSet<String> = env
        .store
        .users()
        .linked_accounts(&ctx.user_id)
        .await
        .api()?
        .into_iter()
        .map(|l| l.provider)
        .collect();
    Ok(ACCOUNT_PROVIDERS
        .iter()
        .map(|(name, display)| AccountProvider {
            provider: (*name).to_owned(),
            display_name: (*display).to_owned(),
            linked: linked.contains(*name),
        })
        .collect())
}
