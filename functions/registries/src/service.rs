//! Registry rules, independent of HTTP: validation, tenant scoping, the synthesized internal
//! registry, and never a password in an answer.

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::registries::{
    CreateDockerRegistry, DockerRegistry, RegistryType, UpdateDockerRegistry,
};
use cove_api_types::time::now_rfc3339;
use cove_edge::store_error::IntoApi;
use cove_edge::web::JsonBody;
use cove_edge::{Action, AuthContext, Env, authorize};
use cove_store::registries::{RegistryRecord, url_host};
use cove_store::{Conflict, StoreError};

use crate::settings::RegistrySettings;

/// Id of the synthesized internal registry (the same in every organization).
pub const INTERNAL_REGISTRY_ID: &str = "00000000-0000-4000-8000-00000000c0fe";
const MAX_NAME_LEN: usize = 255;
const MAX_FIELD_LEN: usize = 1024;

/// What a handler runs with.
pub struct Call<'a> {
    pub env: &'a Env,
    pub settings: &'a RegistrySettings,
    pub ctx: AuthContext,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Registry with ID {id} not found"))
}

fn read_only() -> ApiError {
    ApiError::forbidden("The internal registry is managed by the platform and cannot be changed")
}

/// The secret that seals passwords; without one nothing can be stored.
fn secret(settings: &RegistrySettings) -> Result<&[u8], ApiError> {
    if settings.secret.is_empty() {
        tracing::error!(
            "scoped_credentials_secret is not set: registry passwords cannot be sealed"
        );
        return Err(ApiError::service_unavailable(
            "Registry credentials are not configured on this platform",
        ));
    }
    Ok(settings.secret.as_bytes())
}

/// The internal registry as the organization sees it (its push username and project).
pub fn internal_view(settings: &RegistrySettings, org: &str) -> Option<DockerRegistry> {
    let host = settings.internal_registry.as_ref()?;
    Some(DockerRegistry {
        id: INTERNAL_REGISTRY_ID.to_owned(),
        name: "Internal registry".to_owned(),
        url: host.clone(),
        username: format!("{}{org}", cove_scoped_creds::REGISTRY_USER_PREFIX),
        project: cove_scoped_creds::project_of(org),
        registry_type: RegistryType::Internal,
        created_at: cove_api_types::orgs::EPOCH.to_owned(),
        updated_at: cove_api_types::orgs::EPOCH.to_owned(),
    })
}

/// A stored registry as answered: no password.
pub fn view(rec: &RegistryRecord) -> DockerRegistry {
    DockerRegistry {
        id: rec.id.clone(),
        name: rec.name.clone(),
        url: rec.url.clone(),
        username: rec.username.clone(),
        project: rec.project.clone(),
        registry_type: RegistryType::Organization,
        created_at: rec.created_at.clone(),
        updated_at: rec.updated_at.clone(),
    }
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::bad_request(format!("{field} must not be empty")));
    }
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(v.to_owned())
}

/// A registry URL: `host[:port][/path]`, optionally with an `http(s)://` scheme.
fn registry_url(url: &str) -> Result<String, ApiError> {
    let url = text("url", url, MAX_FIELD_LEN)?;
    let bad = || ApiError::bad_request(format!("url {url:?} is not a registry URL"));
    if let Some((scheme, _)) = url.split_once("://")
        && !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
    {
        return Err(bad());
    }
    let host = url_host(&url);
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let port_ok = host
        .rsplit_once(':')
        .is_none_or(|(_, p)| host.starts_with('[') || p.parse::<u16>().is_ok());
    if valid && port_ok {
        Ok(url)
    } else {
        Err(bad())
    }
}

fn project(p: Option<&str>) -> Result<String, ApiError> {
    let p = p.map(str::trim).unwrap_or_default();
    if p.len() > MAX_NAME_LEN || p.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::bad_request(
            "project must be a registry namespace",
        ));
    }
    Ok(p.to_owned())
}

/// Every registry of the organization, the internal one first.
pub async fn list(call: &Call<'_>) -> Result<Vec<DockerRegistry>, ApiError> {
    let org = &call.ctx.organization_id;
    let mut out: Vec<_> = internal_view(call.settings, org.as_str())
        .into_iter()
        .collect();
    let rows = call.env.store.registries().list(org).await.api()?;
    out.extend(rows.iter().map(view));
    Ok(out)
}

async fn stored(call: &Call<'_>, id: &str) -> Result<RegistryRecord, ApiError> {
    let org = &call.ctx.organization_id;
    call.env
        .store
        .registries()
        .get(org, id)
        .await
        .api()?
        .ok_or_else(|| not_found(id))
}

/// One registry of the organization (the internal one included).
pub async fn get(call: &Call<'_>, id: &str) -> Result<DockerRegistry, ApiError> {
    if id == INTERNAL_REGISTRY_ID {
        return internal_view(call.settings, call.ctx.organization_id.as_str())
            .ok_or_else(|| not_found(id));
    }
    Ok(view(&stored(call, id).await?))
}

/// Registers a registry; the password is sealed and never answered.
pub async fn create(
    call: &Call<'_>,
    body: CreateDockerRegistry,
) -> Result<DockerRegistry, ApiError> {
    let name = text("name", &body.name, MAX_NAME_LEN)?;
    let url = registry_url(&body.url)?;
    let username = text("username", &body.username, MAX_FIELD_LEN)?;
    if body.password.is_empty() || body.password.len() > MAX_FIELD_LEN * 8 {
        return Err(ApiError::bad_request("password must not be empty"));
    }
    let project = project(body.project.as_deref())?;
    let secret = secret(call.settings)?;
    let now = now_rfc3339();
    let mut rec = RegistryRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: call.ctx.organization_id.clone(),
        name,
        url,
        username,
        password_sealed: String::new(),
        project,
        is_default: false,
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    rec.set_password(secret, &body.password).api()?;
    call.env.store.registries().create(&rec).await.api()?;
    tracing::info!(org = %rec.organization_id.as_str(), id = rec.id, host = rec.host(), "registry created");
    Ok(view(&rec))
}

/// Changes a registry; an absent password keeps the stored one. The body is read only once
/// the registry is known to be the caller's (another organization's id is a 404 whatever the body).
pub async fn update(
    call: &Call<'_>,
    id: &str,
    body: JsonBody<'_, UpdateDockerRegistry>,
) -> Result<DockerRegistry, ApiError> {
    if id == INTERNAL_REGISTRY_ID {
        return Err(read_only());
    }
    let mut rec = stored(call, id).await?;
    let body = body.parse()?;
    rec.name = text("name", &body.name, MAX_NAME_LEN)?;
    rec.url = registry_url(&body.url)?;
    rec.username = text("username", &body.username, MAX_FIELD_LEN)?;
    if body.project.is_some() {
        rec.project = project(body.project.as_deref())?;
    }
    if let Some(password) = body.password.as_deref().filter(|p| !p.is_empty()) {
        rec.set_password(secret(call.settings)?, password).api()?;
    }
    save(call, rec).await
}

async fn save(call: &Call<'_>, mut rec: RegistryRecord) -> Result<DockerRegistry, ApiError> {
    rec.updated_at = now_rfc3339();
    rec.version += 1;
    match call.env.store.registries().update(&rec).await {
        Ok(()) => Ok(view(&rec)),
        Err(StoreError::Conflict {
            conflict: Conflict::Changed,
            ..
        }) => Err(ApiError::conflict(
            "The registry was changed or deleted meanwhile; retry",
        )),
        Err(e) => Err(e).api(),
    }
}

/// Makes the registry the organization's default one for its host (the others lose the flag).
pub async fn set_default(call: &Call<'_>, id: &str) -> Result<DockerRegistry, ApiError> {
    if id == INTERNAL_REGISTRY_ID {
        return Err(read_only());
    }
    let rec = stored(call, id).await?;
    let org = &call.ctx.organization_id;
    for other in call.env.store.registries().list(org).await.api()? {
        if other.id != rec.id && other.is_default {
            save(
                call,
                RegistryRecord {
                    is_default: false,
                    ..other
                },
            )
            .await?;
        }
    }
    save(
        call,
        RegistryRecord {
            is_default: true,
            ..rec
        },
    )
    .await
}

/// Deletes a registry of the organization.
pub async fn delete(call: &Call<'_>, id: &str) -> Result<(), ApiError> {
    if id == INTERNAL_REGISTRY_ID {
        return Err(read_only());
    }
    let org = &call.ctx.organization_id;
    if call.env.store.registries().delete(org, id).await.api()? {
        Ok(())
    } else {
        Err(not_found(id))
    }
}

/// `write:registries` (create, change, push access) or `delete:registries` (delete).
pub async fn require(call: &Call<'_>, p: Permission, creates: bool) -> Result<(), ApiError> {
    let action = if creates {
        Action::Create(p)
    } else {
        Action::Use(p)
    };
    authorize(call.env, &call.ctx, action).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls_are_validated() {
        for ok in [
            "https://registry.example.com",
            "registry.example.com:5000",
            "http://127.0.0.1:41234/v2/",
            "ghcr.io",
        ] {
            assert!(registry_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "  ",
            "ftp://x.example",
            "https://",
            "exa mple.com",
            "host:99999",
            "a\u{7}b",
        ] {
            assert!(registry_url(bad).is_err(), "{bad:?}");
        }
    }
}
