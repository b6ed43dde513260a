//! Signed preview URLs (CONTRACT §9): `{proto}://{port}-{token}.{domain}`, the token stored
//! (`cove_store::preview_tokens`) until it expires or is expired early.

use cove_api_types::ApiError;
use cove_api_types::permissions::Permission;
use cove_api_types::preview::{SIGNED_URL_DEFAULT_SECS, SIGNED_URL_MAX_SECS, SignedPortPreviewUrl};
use cove_edge::store_error::IntoApi;
use cove_edge::{Action, authorize};
use cove_store::preview_tokens::PreviewTokenRecord;

use super::{Call, find};
use crate::view;

fn parse_port(port: &str) -> Result<u16, ApiError> {
    port.parse()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::bad_request("Invalid port: must be between 1 and 65535"))
}

/// `expiresInSeconds`: 1..=86400, default 60.
pub fn parse_expiry(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(SIGNED_URL_DEFAULT_SECS);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|s| (1..=SIGNED_URL_MAX_SECS).contains(s))
        .ok_or_else(|| ApiError::bad_request("expiresInSeconds must be an integer from 1 to 86400"))
}

/// A new signed preview URL of the caller's sandbox for `port`, valid `expires` seconds.
pub async fn signed_preview_url(
    call: &Call<'_>,
    id_or_name: &str,
    port: &str,
    expires: Option<&str>,
) -> Result<SignedPortPreviewUrl, ApiError> {
    let port = parse_port(port)?;
    let seconds = parse_expiry(expires)?;
    let rec = find(call, id_or_name).await?;
    let token = PreviewTokenRecord::new(
        rec.id.clone(),
        port,
        time::OffsetDateTime::now_utc(),
        seconds,
    )
    .api()?;
    call.env.store.preview_tokens().create(&token).await.api()?;
    Ok(SignedPortPreviewUrl {
        url: view::preview_url(call.settings, &call.host, &token.token, port),
        sandbox_id: rec.id.to_string(),
        port,
        token: token.token,
    })
}

/// Expires a signed preview URL of the caller's sandbox now (an unknown token: 404).
pub async fn expire_signed_preview_url(
    call: &Call<'_>,
    id_or_name: &str,
    port: &str,
    token: &str,
) -> Result<(), ApiError> {
    // Expiring changes state: `write:sandboxes`, like the other sandbox actions.
    authorize(call.env, &call.ctx, Action::Use(Permission::WriteSandboxes)).await?;
    let port = parse_port(port)?;
    let rec = find(call, id_or_name).await?;
    let missing = || ApiError::not_found("Signed preview URL not found");
    let stored = call
        .env
        .store
        .preview_tokens()
        .get_live(token, time::OffsetDateTime::now_utc())
        .await
        .api()?
        .filter(|t| t.sandbox_id == rec.id && t.port == port)
        .ok_or_else(missing)?;
    call.env
        .store
        .preview_tokens()
        .delete(&stored.token)
        .await
        .api()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_bounds() {
        assert_eq!(parse_expiry(None).unwrap(), 60);
        assert_eq!(parse_expiry(Some("")).unwrap(), 60);
        assert_eq!(parse_expiry(Some("1")).unwrap(), 1);
        assert_eq!(parse_expiry(Some("86400")).unwrap(), 86400);
        for bad in ["0", "86401", "-1", "x", "1.5"] {
            assert_eq!(parse_expiry(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(parse_port("0").unwrap_err().status, 400);
        assert_eq!(parse_port("65536").unwrap_err().status, 400);
        assert_eq!(parse_port("8080").unwrap(), 8080);
    }
}
