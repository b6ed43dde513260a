//! Fetching a runner's snapshot log whole (the native path, and `follow=false` in the component).

use bytes::Bytes;
use cove_api_types::ApiError;
use cove_edge::outbound;

/// The runner's log at `url` (runner token `token`); an unreachable runner is 502, a refusal
/// is relayed as a 502 with the runner's status.
pub async fn fetch(url: &str, token: &str) -> Result<Bytes, ApiError> {
    let req = http::Request::get(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Bytes::new())
        .map_err(|e| {
            tracing::warn!(error = %e, url, "invalid runner URL");
            ApiError::internal()
        })?;
    let resp = outbound::send(req).await.map_err(|e| {
        tracing::warn!(error = %e.message, url, "runner unreachable for snapshot logs");
        ApiError::new(502, "The runner holding the snapshot's logs did not answer")
    })?;
    if resp.status() == http::StatusCode::NOT_FOUND {
        return Ok(Bytes::new());
    }
    if !resp.status().is_success() {
        tracing::warn!(status = %resp.status(), url, "runner refused snapshot logs");
        return Err(ApiError::new(
            502,
            format!(
                "The runner answered {} for the snapshot's logs",
                resp.status().as_u16()
            ),
        ));
    }
    Ok(resp.into_body())
}
