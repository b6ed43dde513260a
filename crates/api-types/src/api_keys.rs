//! `/api/api-keys` wire types (CONTRACT §7).

use serde::{Deserialize, Serialize};

use crate::ids::{OrganizationId, UserId};
use crate::permissions::Permission;

/// `POST /api-keys` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateApiKey {
    /// Unique per organization and user.
    pub name: String,
    pub permissions: Vec<Permission>,
    /// ISO-8601; the key is refused with 401 once this time has passed.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `POST /api-keys` answer (201): the only place the full key is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    pub name: String,
    /// The full key, `dtn_` followed by 64 hex characters.
    pub value: String,
    pub created_at: String,
    pub permissions: Vec<Permission>,
    pub expires_at: Option<String>,
}

/// An API key as listed: the value is masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub name: String,
    /// Masked: the first three and last three characters around 20 asterisks.
    pub value: String,
    pub created_at: String,
    pub permissions: Vec<Permission>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub user_id: UserId,
    pub organization_id: OrganizationId,
}

/// The masked form Daytona shows: `dtn********************abc`.
pub fn mask_key(prefix: &str, suffix: &str) -> String {
    format!("{prefix}{}{suffix}", "*".repeat(20))
}
