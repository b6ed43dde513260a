//! The organization's roles (besides the global ones every organization has).

use std::collections::BTreeSet;

use cove_api_types::ApiError;
use cove_api_types::ids::OrganizationId;
use cove_api_types::orgs::{CreateOrganizationRole, OrganizationRole};
use cove_api_types::permissions::Permission;
use cove_api_types::time::now_rfc3339;
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::StoreError;
use cove_store::roles::RoleRecord;

use super::{concurrent, load, role_view, scoped, scoped_for, validate_name};

pub async fn list_roles(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
) -> Result<Vec<OrganizationRole>, ApiError> {
    let ctx = scoped(env, ctx, org).await?;
    authorize(env, &ctx, Action::OrgRead).await?;
    let mut roles: Vec<RoleRecord> = cove_store::roles::globals();
    let mut own = env.store.roles().list(org).await.api()?;
    own.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    roles.extend(own);
    Ok(roles.into_iter().map(role_view).collect())
}

/// Checks that every role id exists in the organization; returns the ids deduplicated and the
/// permissions they carry.
pub(super) async fn resolve_roles(
    env: &Env,
    org: &OrganizationId,
    ids: &[String],
) -> Result<(Vec<String>, BTreeSet<Permission>), ApiError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut perms = BTreeSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::bad_request(format!("Invalid role id: {id}")));
        }
        let role = env
            .store
            .roles()
            .get(org, id)
            .await
            .api()?
            .ok_or_else(|| ApiError::bad_request(format!("Role with ID {id} not found")))?;
        perms.extend(role.permissions.iter().filter_map(|p| Permission::parse(p)));
        out.push(id.clone());
    }
    Ok((out, perms))
}

async fn check_role_name(
    env: &Env,
    org: &OrganizationId,
    name: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let taken = cove_store::roles::globals()
        .into_iter()
        .chain(env.store.roles().list(org).await.api()?)
        .any(|r| r.name.eq_ignore_ascii_case(name) && Some(r.id.as_str()) != except);
    if taken {
        return Err(role_name_taken(name));
    }
    Ok(())
}

fn role_name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!("Role with name {name} already exists"))
}

/// A role body the caller may write: permissions it holds, a valid name.
async fn role_body(
    env: &Env,
    ctx: &AuthContext,
    body: JsonBody<'_, CreateOrganizationRole>,
) -> Result<(String, String, BTreeSet<Permission>), ApiError> {
    let body = body.parse()?;
    let perms: BTreeSet<Permission> = body.permissions.into_iter().collect();
    authorize(env, ctx, Action::Grant(perms.clone())).await?;
    let name = validate_name("name", &body.name)?;
    Ok((name, body.description.trim().to_owned(), perms))
}

fn permission_names(perms: &BTreeSet<Permission>) -> Vec<String> {
    perms.iter().map(|p| p.as_str().to_owned()).collect()
}

pub async fn create_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    body: JsonBody<'_, CreateOrganizationRole>,
) -> Result<OrganizationRole, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageRoles).await?;
    let (name, description, perms) = role_body(env, &ctx, body).await?;
    check_role_name(env, org, &name, None).await?;
    let now = now_rfc3339();
    let rec = RoleRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: Some(org.clone()),
        name,
        description,
        permissions: permission_names(&perms),
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    match env.store.roles().create(org, &rec).await {
        Ok(()) => Ok(role_view(rec)),
        Err(StoreError::Conflict { .. }) => {
            load(env, org).await?;
            Err(role_name_taken(&rec.name))
        }
        Err(e) => Err(e.api()),
    }
}

fn role_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Role with ID {id} not found"))
}

async fn own_role(env: &Env, org: &OrganizationId, id: &str) -> Result<RoleRecord, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!("Invalid role id: {id}")));
    }
    let role = env
        .store
        .roles()
        .get(org, id)
        .await
        .api()?
        .ok_or_else(|| role_not_found(id))?;
    if role.is_global() {
        return Err(ApiError::forbidden("Global roles cannot be changed"));
    }
    Ok(role)
}

pub async fn update_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    id: &str,
    body: JsonBody<'_, CreateOrganizationRole>,
) -> Result<OrganizationRole, ApiError> {
    let ctx = scoped_for(env, ctx, org, Action::ManageRoles).await?;
    let (name, description, perms) = role_body(env, &ctx, body).await?;
    let mut rec = own_role(env, org, id).await?;
    check_role_name(env, org, &name, Some(id)).await?;
    let old_name = std::mem::replace(&mut rec.name, name);
    rec.description = description;
    rec.permissions = permission_names(&perms);
    rec.version += 1;
    rec.updated_at = now_rfc3339();
    match env.store.roles().update(org, &old_name, &rec).await {
        Ok(()) => Ok(role_view(rec)),
        Err(StoreError::Conflict { .. }) => {
            load(env, org).await?;
            // The name lock or the version lost: say which.
            if old_name.to_lowercase() != rec.name.to_lowercase() {
                check_role_name(env, org, &rec.name, Some(id)).await?;
            }
            Err(concurrent())
        }
        Err(e) => Err(e.api()),
    }
}

pub async fn delete_role(
    env: &Env,
    ctx: &AuthContext,
    org: &OrganizationId,
    id: &str,
) -> Result<(), ApiError> {
    scoped_for(env, ctx, org, Action::ManageRoles).await?;
    own_role(env, org, id).await?;
    match env.store.roles().delete(org, id).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound { .. }) => Err(role_not_found(id)),
        Err(e) => Err(e.api()),
    }
}
