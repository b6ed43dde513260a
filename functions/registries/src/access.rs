//! Short-lived push credentials: the internal registry's project and the object storage prefix.

use cove_api_types::ApiError;
use cove_api_types::registries::{RegistryPushAccessDto, StorageAccessDto};
use cove_api_types::time::format_rfc3339;

use crate::service::{Call, INTERNAL_REGISTRY_ID};
use crate::sts;

fn expires_at(exp: u64) -> String {
    let t = i64::try_from(exp)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format_rfc3339(t)
}

fn unconfigured(what: &str) -> ApiError {
    ApiError::service_unavailable(format!("{what} is not configured on this platform"))
}

fn signing_secret<'a>(call: &Call<'a>) -> Result<&'a [u8], ApiError> {
    if call.settings.secret.is_empty() {
        tracing::error!("scoped_credentials_secret is not set");
        return Err(unconfigured("Scoped credentials"));
    }
    Ok(call.settings.secret.as_bytes())
}

fn mint_failed(e: cove_scoped_creds::CredsError) -> ApiError {
    tracing::error!(error = %e, "cannot mint scoped credentials");
    ApiError::internal()
}

/// Push/pull credentials for `cove-<orgId>` in the internal registry, valid for the ttl.
pub fn registry_push_access(call: &Call<'_>) -> Result<RegistryPushAccessDto, ApiError> {
    let host = call
        .settings
        .internal_registry
        .clone()
        .ok_or_else(|| unconfigured("The internal registry"))?;
    let exp = cove_scoped_creds::now_unix() + call.settings.ttl_secs;
    let org = call.ctx.organization_id.as_str();
    let c =
        cove_scoped_creds::mint_registry(signing_secret(call)?, org, exp).map_err(mint_failed)?;
    tracing::info!(org, exp, "registry push access minted");
    Ok(RegistryPushAccessDto {
        username: c.username,
        secret: c.password,
        registry_url: host,
        registry_id: INTERNAL_REGISTRY_ID.to_owned(),
        project: c.project,
        expires_at: expires_at(exp),
    })
}

/// S3 credentials for `{bucket}/{orgId}/`: STS when a role is configured, else signed locally.
pub async fn storage_push_access(call: &Call<'_>) -> Result<StorageAccessDto, ApiError> {
    let s = call.settings;
    let org = call.ctx.organization_id.as_str().to_owned();
    if s.storage_url.is_empty() {
        return Err(unconfigured("Object storage"));
    }
    let (access_key, secret, session_token) = match &s.sts_role_arn {
        Some(role) => {
            let c = sts::assume_role(s, role, &org).await?;
            (c.access_key_id, c.secret_access_key, c.session_token)
        }
        None => {
            let exp = cove_scoped_creds::now_unix() + s.ttl_secs;
            let c = cove_scoped_creds::mint_s3(signing_secret(call)?, &org, exp)
                .map_err(mint_failed)?;
            (c.access_key, c.secret, c.session_token)
        }
    };
    tracing::info!(
        org,
        sts = s.sts_role_arn.is_some(),
        "object storage push access minted"
    );
    Ok(StorageAccessDto {
        access_key,
        secret,
        session_token,
        storage_url: s.storage_url.clone(),
        organization_id: org,
        bucket: s.s3_bucket.clone(),
        region: s.region.clone(),
    })
}
