//! `/api/organizations`, `/api/users` and `/api/config` wire types (CONTRACT §8).
//!
//! Numbers are integers (the client's `Union[float, int]` and `StrictInt` both accept them);
//! timestamps are wire-format strings (`2026-01-01T00:00:00.000Z`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{OrganizationId, UserId};
use crate::permissions::Permission;

/// The timestamp sent where 0.226 types a field as a non-nullable `datetime` but there is no value
/// (e.g. `suspendedAt` of an organization that was never suspended).
pub const EPOCH: &str = "1970-01-01T00:00:00.000Z";

/// An organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub created_by: UserId,
    pub personal: bool,
    pub created_at: String,
    pub updated_at: String,
    pub suspended: bool,
    /// [`EPOCH`] when not suspended.
    pub suspended_at: String,
    /// Empty when not suspended.
    pub suspension_reason: String,
    /// [`EPOCH`] when not suspended or suspended indefinitely.
    pub suspended_until: String,
    pub suspension_cleanup_grace_period_hours: i64,
    pub max_cpu_per_sandbox: i64,
    pub max_memory_per_sandbox: i64,
    pub max_disk_per_sandbox: i64,
    pub max_snapshot_size: i64,
    pub snapshot_quota: i64,
    pub volume_quota: i64,
    pub secret_quota: i64,
    pub max_secrets_per_sandbox: i64,
    pub snapshot_deactivation_timeout_minutes: i64,
    pub default_queue_timeout: Option<i64>,
    pub sandbox_limited_network_egress: bool,
    pub preview_warning_enabled: bool,
    pub sso_enabled: bool,
    pub scim_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_region_id: Option<String>,
    pub authenticated_rate_limit: Option<i64>,
    pub sandbox_create_rate_limit: Option<i64>,
    pub sandbox_lifecycle_rate_limit: Option<i64>,
    pub authenticated_rate_limit_ttl_seconds: Option<i64>,
    pub sandbox_create_rate_limit_ttl_seconds: Option<i64>,
    pub sandbox_lifecycle_rate_limit_ttl_seconds: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub experimental_config: BTreeMap<String, serde_json::Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub otel_config: Option<serde_json::Value>,
}

/// `POST /organizations` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateOrganization {
    pub name: String,
    #[serde(default)]
    pub default_region_id: Option<String>,
}

/// A role: a named set of permissions assigned to members. Global roles exist in every organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRole {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub is_global: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /organizations/{id}/roles` and `PUT .../roles/{roleId}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateOrganizationRole {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
}

/// `PUT .../roles/{roleId}` body (same shape as create).
pub type UpdateOrganizationRole = CreateOrganizationRole;

/// A member of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrganizationUser {
    pub user_id: UserId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub email: String,
    /// `owner` or `member`.
    pub role: String,
    pub assigned_roles: Vec<OrganizationRole>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST .../users/{userId}/access` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationMemberAccess {
    pub role: String,
    #[serde(default)]
    pub assigned_role_ids: Vec<String>,
}

/// `POST .../users/{userId}/role` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationMemberRole {
    pub role: String,
}

/// `POST .../users/{userId}/assigned-roles` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateAssignedOrganizationRoles {
    pub role_ids: Vec<String>,
}

/// An invitation to join an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrganizationInvitation {
    pub id: String,
    pub email: String,
    pub invited_by: String,
    pub organization_id: OrganizationId,
    pub organization_name: String,
    pub expires_at: String,
    /// `pending`, `accepted`, `declined` or `cancelled`.
    pub status: String,
    pub role: String,
    pub assigned_roles: Vec<OrganizationRole>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST .../invitations` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateOrganizationInvitation {
    pub email: String,
    pub role: String,
    #[serde(default)]
    pub assigned_role_ids: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `PUT .../invitations/{invitationId}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationInvitation {
    pub role: String,
    #[serde(default)]
    pub assigned_role_ids: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Per-region usage and quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegionUsageOverview {
    pub region_id: String,
    pub sandbox_class: String,
    pub total_cpu_quota: i64,
    pub current_cpu_usage: i64,
    pub total_memory_quota: i64,
    pub current_memory_usage: i64,
    pub total_disk_quota: i64,
    pub current_disk_usage: i64,
    pub total_gpu_quota: i64,
    pub current_gpu_usage: i64,
    pub allowed_gpu_types: Option<Vec<String>>,
    pub max_cpu_per_sandbox: Option<i64>,
    pub max_memory_per_sandbox: Option<i64>,
    pub max_disk_per_sandbox: Option<i64>,
    pub max_disk_per_non_ephemeral_sandbox: Option<i64>,
    pub max_cpu_per_gpu: Option<i64>,
    pub max_memory_per_gpu: Option<i64>,
    pub max_disk_per_gpu: Option<i64>,
}

/// `GET .../usage` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrganizationUsageOverview {
    pub region_usage: Vec<RegionUsageOverview>,
    pub total_snapshot_quota: i64,
    pub current_snapshot_usage: i64,
    pub total_volume_quota: i64,
    pub current_volume_usage: i64,
}

/// `PATCH .../quota` body (system admin). Absent or null fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationQuota {
    #[serde(default)]
    pub max_cpu_per_sandbox: Option<i64>,
    #[serde(default)]
    pub max_memory_per_sandbox: Option<i64>,
    #[serde(default)]
    pub max_disk_per_sandbox: Option<i64>,
    #[serde(default)]
    pub snapshot_quota: Option<i64>,
    #[serde(default)]
    pub max_snapshot_size: Option<i64>,
    #[serde(default)]
    pub volume_quota: Option<i64>,
    #[serde(default)]
    pub secret_quota: Option<i64>,
    #[serde(default)]
    pub max_secrets_per_sandbox: Option<i64>,
    #[serde(default)]
    pub total_cpu_quota: Option<i64>,
    #[serde(default)]
    pub total_memory_quota: Option<i64>,
    #[serde(default)]
    pub total_disk_quota: Option<i64>,
    #[serde(default)]
    pub snapshot_deactivation_timeout_minutes: Option<i64>,
}

/// `PATCH .../quota/{regionId}` body (system admin). Absent or null fields keep their value. Cove
/// has one sandbox class (`container`) and no GPUs: asking for anything else is a 400.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationRegionQuota {
    #[serde(default)]
    pub sandbox_class: Option<String>,
    #[serde(default)]
    pub total_cpu_quota: Option<i64>,
    #[serde(default)]
    pub total_memory_quota: Option<i64>,
    #[serde(default)]
    pub total_disk_quota: Option<i64>,
    #[serde(default)]
    pub total_gpu_quota: Option<i64>,
    #[serde(default)]
    pub allowed_gpu_types: Option<Vec<String>>,
    #[serde(default)]
    pub max_cpu_per_sandbox: Option<i64>,
    #[serde(default)]
    pub max_memory_per_sandbox: Option<i64>,
    #[serde(default)]
    pub max_disk_per_sandbox: Option<i64>,
    #[serde(default)]
    pub max_disk_per_non_ephemeral_sandbox: Option<i64>,
    #[serde(default)]
    pub max_cpu_per_gpu: Option<i64>,
    #[serde(default)]
    pub max_memory_per_gpu: Option<i64>,
    #[serde(default)]
    pub max_disk_per_gpu: Option<i64>,
    #[serde(default)]
    pub max_sandbox_lifespan: Option<i64>,
}

/// `POST .../suspend` body (system admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSuspension {
    pub reason: String,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub suspension_cleanup_grace_period_hours: Option<i64>,
}

/// A user's SSH public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPublicKey {
    pub key: String,
    pub name: String,
}

/// `GET /users/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub public_keys: Vec<UserPublicKey>,
    pub created_at: String,
}

/// `POST /users` body (system admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    /// The identity provider's subject; a UUID is generated when absent.
    #[serde(default)]
    pub id: Option<UserId>,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// `admin` or `user` (default).
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
}

/// `POST /users/linked-accounts` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateLinkedAccount {
    pub provider: String,
    pub user_id: String,
}

/// An identity provider a user can link (`GET /users/account-providers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AccountProvider {
    pub provider: String,
    pub display_name: String,
    /// Whether the caller has an account of this provider linked.
    pub linked: bool,
}

/// OIDC settings announced by `GET /config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub audience: String,
    pub provider: String,
}

/// `GET /config` (public).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DaytonaConfiguration {
    pub version: String,
    pub oidc: OidcConfig,
    pub linked_accounts_enabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub announcements: BTreeMap<String, serde_json::Value>,
    pub proxy_template_url: String,
    pub proxy_toolbox_url: String,
    pub default_snapshot: String,
    pub dashboard_url: String,
    pub max_auto_archive_interval: i64,
    /// Daytona's spelling.
    pub maintanance_mode: bool,
    pub environment: String,
}
