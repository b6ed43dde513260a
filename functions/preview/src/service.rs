//! What each preview route answers (the routes authenticate first).

use cove_api_types::ApiError;
use cove_api_types::ids::SandboxId;
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::SandboxState;
use cove_edge::store_error::IntoApi;
use cove_edge::web::Request;
use cove_edge::{Action, Env, auth, authorize};
use cove_store::sandboxes::SandboxRecord;
use sha2::{Digest, Sha256};

use crate::settings::same_secret;

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Sandbox with ID {id} not found"))
}

/// The sandbox `id` unless it is unknown or destroyed (both 404).
pub async fn live_sandbox(env: &Env, id: &str) -> Result<SandboxRecord, ApiError> {
    let Ok(sid) = SandboxId::parse(id) else {
        return Err(not_found(id));
    };
    env.store
        .sandboxes()
        .get(&sid)
        .await
        .api()?
        .filter(|s| !s.is_destroyed())
        .ok_or_else(|| not_found(id))
}

/// `true` for a public sandbox; 404 for a private, destroyed or unknown one.
pub async fn is_public(env: &Env, id: &str) -> Result<bool, ApiError> {
    let s = live_sandbox(env, id).await?;
    if s.public {
        Ok(true)
    } else {
        Err(not_found(id))
    }
}

/// `true` when `token` is the sandbox's auth token; 404 otherwise (or when it is unknown).
pub async fn validate(env: &Env, id: &str, token: &str) -> Result<bool, ApiError> {
    let s = live_sandbox(env, id).await?;
    let ok = !s.auth_token.is_empty() && same_secret(s.auth_token.as_bytes(), token.as_bytes());
    if ok {
        Ok(true)
    } else {
        Err(ApiError::not_found("Invalid preview token"))
    }
}

/// The sandbox a live signed preview token names for `port`; 404 otherwise.
pub async fn signed_sandbox_id(env: &Env, token: &str, port: &str) -> Result<String, ApiError> {
    let missing = || ApiError::not_found("Signed preview URL not found or expired");
    let port: u16 = port.parse().map_err(|_| missing())?;
    let rec = env
        .store
        .preview_tokens()
        .get_live(token, time::OffsetDateTime::now_utc())
        .await
        .api()?
        .filter(|r| r.port == port)
        .ok_or_else(missing)?;
    // A token outlives neither its sandbox nor a destroy.
    live_sandbox(env, rec.sandbox_id.as_str())
        .await
        .map_err(|_| missing())?;
    Ok(rec.sandbox_id.to_string())
}

/// A key for the proxy to sign its cookies of this sandbox with: it changes with the sandbox's
/// auth token (regenerated on every start) and with the proxy token.
pub async fn signing_key(env: &Env, proxy_key: &str, id: &str) -> Result<String, ApiError> {
    let s = live_sandbox(env, id).await?;
    let mut h = Sha256::new();
    for part in [
        "cove-preview-signing-key",
        proxy_key,
        s.id.as_str(),
        &s.auth_token,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// One signed file URL as the proxy received it.
pub struct SignedFileUrl<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub expires: &'a str,
    pub signature: &'a str,
}

/// The signature of a file URL (CONTRACT §10.7): `v1_` + base64url, unpadded, of
/// HMAC-SHA256(key, `v1:files:{METHOD}:{path}:{expires}`).
pub fn file_url_signature(key: &str, method: &str, path: &str, expires: u64) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2_11::Sha256>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("v1:files:{method}:{path}:{expires}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!(
        "v1_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// Whether `url` is signed with the sandbox's current key and still valid at `now` (UNIX
/// seconds). A sandbox whose key was never fetched has signed nothing.
pub async fn verify_file_url(
    env: &Env,
    id: &str,
    url: &SignedFileUrl<'_>,
    now: i64,
) -> Result<bool, ApiError> {
    let s = live_sandbox(env, id).await?;
    let Some(key) = s.file_signing_key else {
        return Ok(false);
    };
    Ok(signed_with(&key, url, now))
}

fn signed_with(key: &str, url: &SignedFileUrl<'_>, now: i64) -> bool {
    let Ok(expires) = url.expires.parse::<u64>() else {
        return false;
    };
    if expires != 0 && i64::try_from(expires).unwrap_or(i64::MAX) < now {
        return false;
    }
    let want = file_url_signature(key, url.method, url.path, expires);
    same_secret(want.as_bytes(), url.signature.as_bytes())
}

/// Whether the caller (the request's own API key or JWT) belongs to the sandbox's organization.
/// 401 without a valid credential; 404 for another organization's, a destroyed or unknown sandbox.
pub async fn access(env: &Env, req: &Request, id: &str) -> Result<bool, ApiError> {
    // The organization header would make a JWT's authentication fail for an organization the
    // user is not in; membership of the sandbox's organization is what counts here.
    let mut plain = http::Request::new(bytes::Bytes::new());
    *plain.uri_mut() = req.uri().clone();
    *plain.headers_mut() = req.headers().clone();
    plain.headers_mut().remove(auth::ORG_HEADER);
    let (ctx, sandbox) = futures::join!(auth::authenticate(env, &plain), live_sandbox(env, id));
    let ctx = ctx?;
    let sandbox = sandbox?;
    match ctx.in_org(env, &sandbox.org_id).await {
        Ok(_) => Ok(true),
        Err(e) if e.status == 403 => Err(not_found(id)),
        Err(e) => Err(e),
    }
}

/// Whether the toolbox component would forward a call of this caller to sandbox `id`: the same
/// checks in the same order (organization, `write:sandboxes`, `started`, a runner with an API
/// URL), with its answers; the activity is recorded as that component does (once a minute).
pub async fn toolbox_access(env: &Env, req: &Request, id: &str) -> Result<bool, ApiError> {
    let (ctx, sandbox) = futures::join!(auth::authenticate(env, req), live_sandbox(env, id));
    let ctx = ctx?;
    let sandbox = sandbox
        .ok()
        .filter(|s| s.org_id == ctx.organization_id)
        .ok_or_else(|| ApiError::not_found(format!("Sandbox with ID or name {id} not found")))?;
    authorize(env, &ctx, Action::Use(Permission::WriteSandboxes)).await?;
    if sandbox.state != SandboxState::Started {
        return Err(ApiError::bad_request(format!(
            "Sandbox is not running (state: {})",
            sandbox.state
        ))
        .with_code("SANDBOX_NOT_STARTED"));
    }
    let unavailable = || ApiError::service_unavailable("The sandbox's runner is not available");
    let runner_id = sandbox.runner_id.as_ref().ok_or_else(unavailable)?;
    env.store
        .runners()
        .get(runner_id)
        .await
        .api()?
        .filter(|r| r.api_url.as_deref().is_some_and(|u| !u.is_empty()))
        .ok_or_else(unavailable)?;
    touch(env, &sandbox, TOOLBOX_ACTIVITY_SECS).await;
    Ok(true)
}

/// The toolbox component's activity interval (`toolbox_fn::service::ACTIVITY_INTERVAL_SECS`).
const TOOLBOX_ACTIVITY_SECS: i64 = 60;

/// Bumps `lastActivityAt` when older than `interval` seconds; best effort.
async fn touch(env: &Env, s: &SandboxRecord, interval: i64) {
    let now = time::OffsetDateTime::now_utc();
    let fmt = cove_api_types::time::format_rfc3339;
    let older = fmt(now - time::Duration::seconds(interval));
    if let Err(e) = env
        .store
        .sandboxes()
        .touch_activity(&s.id, &fmt(now), &older)
        .await
    {
        tracing::warn!(error = %e, sandbox = %s.id, "could not record sandbox activity");
    }
}

/// Records proxied traffic as sandbox activity (at most one write per 5 s).
pub async fn record_activity(env: &Env, id: &str) -> Result<(), ApiError> {
    let s = live_sandbox(env, id).await?;
    touch(env, &s, 5).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url<'a>(path: &'a str, expires: &'a str, signature: &'a str) -> SignedFileUrl<'a> {
        SignedFileUrl {
            method: "GET",
            path,
            expires,
            signature,
        }
    }

    #[test]
    fn signatures_match_the_sdks() {
        // Python: "v1_" + urlsafe_b64encode(hmac(b"k3y", b"v1:files:GET:/home/daytona/a b.txt:1767225600", sha256)).rstrip("=")
        assert_eq!(
            file_url_signature("k3y", "GET", "/home/daytona/a b.txt", 1_767_225_600),
            "v1_gqe2BF5ouv0fPiME3vWy72u9mBKqoXuzC6luUx384qA"
        );
    }

    #[test]
    fn a_signature_binds_key_method_path_and_expiry() {
        let sig = file_url_signature("k", "GET", "/a", 100);
        assert!(signed_with("k", &url("/a", "100", &sig), 99));
        assert!(signed_with("k", &url("/a", "100", &sig), 100));
        // Expired, another path, method or key, a forged or truncated signature.
        assert!(!signed_with("k", &url("/a", "100", &sig), 101));
        assert!(!signed_with("k", &url("/b", "100", &sig), 99));
        assert!(!signed_with("k2", &url("/a", "100", &sig), 99));
        let post = SignedFileUrl {
            method: "POST",
            ..url("/a", "100", &sig)
        };
        assert!(!signed_with("k", &post, 99));
        assert!(!signed_with("k", &url("/a", "101", &sig), 99));
        assert!(!signed_with(
            "k",
            &url("/a", "100", &sig[..sig.len() - 1]),
            99
        ));
        assert!(!signed_with("k", &url("/a", "soon", &sig), 99));
        // 0 never expires.
        let forever = file_url_signature("k", "GET", "/a", 0);
        assert!(signed_with("k", &url("/a", "0", &forever), i64::MAX));
    }
}
