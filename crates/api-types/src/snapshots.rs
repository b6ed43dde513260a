//! `/api/snapshots` wire types (CONTRACT §5, upstream `SnapshotDto`, `CreateSnapshot`,
//! `PaginatedSnapshots`).
//!
//! Memory is **`mem`** on a [`SnapshotDto`] (but `memory` on [`CreateSnapshot`]);
//! `size, entrypoint, errorReason, lastUsedAt, sourceSandboxId` are required but nullable, so
//! they are always serialized. `size` is in GB (a float).

use serde::{Deserialize, Serialize};

/// State of a snapshot (CONTRACT §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    Building,
    Pending,
    Pulling,
    Snapshotting,
    Active,
    Inactive,
    Error,
    BuildFailed,
    Removing,
}

string_enum_schema!(SnapshotState);

impl SnapshotState {
    pub const ALL: &'static [SnapshotState] = &[
        Self::Building,
        Self::Pending,
        Self::Pulling,
        Self::Snapshotting,
        Self::Active,
        Self::Inactive,
        Self::Error,
        Self::BuildFailed,
        Self::Removing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Pending => "pending",
            Self::Pulling => "pulling",
            Self::Snapshotting => "snapshotting",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Error => "error",
            Self::BuildFailed => "build_failed",
            Self::Removing => "removing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// States that count against the organization's snapshot quota (CONTRACT §8).
    pub fn counts_against_quota(self) -> bool {
        matches!(
            self,
            Self::Building | Self::Pending | Self::Pulling | Self::Active
        )
    }

    /// States the lifecycle sweep drives (each has a deadline).
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Pulling | Self::Building | Self::Removing
        )
    }
}

impl std::fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `buildInfo` of `POST /snapshots` (a declarative build).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateSnapshotBuildInfo {
    pub dockerfile_content: String,
    #[serde(default)]
    pub context_hashes: Option<Vec<String>>,
}

/// `POST /snapshots` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateSnapshot {
    pub name: String,
    #[serde(default)]
    pub image_name: Option<String>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cpu: Option<i64>,
    #[serde(default)]
    pub gpu: Option<i64>,
    #[serde(default)]
    pub gpu_type: Option<Vec<String>>,
    /// GB.
    #[serde(default)]
    pub memory: Option<i64>,
    /// GB.
    #[serde(default)]
    pub disk: Option<i64>,
    #[serde(default)]
    pub build_info: Option<CreateSnapshotBuildInfo>,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub sandbox_class: Option<String>,
}

/// `buildInfo` of a [`SnapshotDto`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub dockerfile_content: String,
    pub context_hashes: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub snapshot_ref: String,
}

/// A snapshot (`SnapshotDto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SnapshotDto {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub organization_id: Option<String>,
    pub general: bool,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image_name: Option<String>,
    pub state: SnapshotState,
    /// GB; null until known.
    pub size: Option<f64>,
    pub entrypoint: Option<Vec<String>>,
    pub cpu: i64,
    pub gpu: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gpu_type: Option<String>,
    pub mem: i64,
    pub disk: i64,
    pub error_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub build_info: Option<BuildInfo>,
    pub region_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initial_runner_id: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
    pub r#ref: Option<String>,
    pub source_sandbox_id: Option<String>,
    pub sandbox_class: String,
}

/// `GET /snapshots` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PaginatedSnapshots {
    pub items: Vec<SnapshotDto>,
    pub total: i64,
    pub page: i64,
    pub total_pages: i64,
}

/// `PATCH /snapshots/{id}/general` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SetSnapshotGeneralStatus {
    pub general: bool,
}

/// `GET /snapshots/{id}/build-logs-url` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SnapshotBuildLogsUrl {
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_use_the_wire_names() {
        for s in SnapshotState::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(SnapshotState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(SnapshotState::BuildFailed.as_str(), "build_failed");
        assert!(SnapshotState::Active.counts_against_quota());
        assert!(!SnapshotState::Error.counts_against_quota());
    }

    #[test]
    fn dto_keeps_nullable_required_fields() {
        let dto = SnapshotDto {
            id: "i".into(),
            organization_id: None,
            general: true,
            name: "n".into(),
            image_name: Some("img:1".into()),
            state: SnapshotState::Active,
            size: None,
            entrypoint: None,
            cpu: 1,
            gpu: 0,
            gpu_type: None,
            mem: 1,
            disk: 3,
            error_reason: None,
            created_at: "t".into(),
            updated_at: "t".into(),
            last_used_at: None,
            build_info: None,
            region_ids: vec!["us".into()],
            initial_runner_id: None,
            r#ref: Some("r".into()),
            source_sandbox_id: None,
            sandbox_class: "container".into(),
        };
        let v = serde_json::to_value(&dto).unwrap();
        for k in [
            "size",
            "entrypoint",
            "errorReason",
            "lastUsedAt",
            "sourceSandboxId",
        ] {
            assert!(v.get(k).is_some_and(serde_json::Value::is_null), "{k}");
        }
        assert_eq!(v["mem"], 1);
        assert!(v.get("memory").is_none());
        assert_eq!(v["ref"], "r");
        let body: CreateSnapshot =
            serde_json::from_str(r#"{"name":"s","imageName":"python:3.12-slim"}"#).unwrap();
        assert_eq!(body.image_name.as_deref(), Some("python:3.12-slim"));
    }
}
