//! `/api/docker-registry` and `/api/object-storage` wire types (CONTRACT §5, §8).
//!
//! No answer type has a password field: a registry's password is write-only.

use serde::{Deserialize, Serialize};

/// `DockerRegistry.registryType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RegistryType {
    /// The platform's own registry (snapshots are pushed there); read-only through the API.
    Internal,
    /// A registry an organization registered (pull credentials for its images).
    Organization,
    Transient,
    Backup,
}

/// A registry as answered by every route: never its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DockerRegistry {
    pub id: String,
    pub name: String,
    pub url: String,
    pub username: String,
    pub project: String,
    pub registry_type: RegistryType,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /docker-registry` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateDockerRegistry {
    pub name: String,
    pub url: String,
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub project: Option<String>,
}

/// `PATCH /docker-registry/{id}` body: `password` absent keeps the stored one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateDockerRegistry {
    pub name: String,
    pub url: String,
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

/// `GET /docker-registry/registry-push-access`: short-lived credentials for the organization's
/// project in the internal registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegistryPushAccessDto {
    pub username: String,
    pub secret: String,
    /// `host:port`, no scheme.
    pub registry_url: String,
    pub registry_id: String,
    pub project: String,
    /// ISO-8601.
    pub expires_at: String,
}

/// `GET /object-storage/push-access`: short-lived S3 credentials limited to
/// `{bucket}/{organizationId}/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StorageAccessDto {
    pub access_key: String,
    pub secret: String,
    pub session_token: String,
    pub storage_url: String,
    pub organization_id: String,
    pub bucket: String,
    pub region: String,
}
