//! Preview URL wire types (CONTRACT §9) beyond `sandbox::PortPreviewUrl`.

use serde::{Deserialize, Serialize};

/// `GET /sandbox/{id}/ports/{port}/signed-preview-url` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SignedPortPreviewUrl {
    pub sandbox_id: String,
    pub port: u16,
    /// 16 characters of `[a-z0-9]`; the URL's host is `{port}-{token}.{domain}`.
    pub token: String,
    pub url: String,
}

/// Default lifetime of a signed preview URL, in seconds.
pub const SIGNED_URL_DEFAULT_SECS: i64 = 60;
/// Longest lifetime of a signed preview URL, in seconds (24 h).
pub const SIGNED_URL_MAX_SECS: i64 = 86_400;
