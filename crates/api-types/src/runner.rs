//! `/api/runners` wire types (CONTRACT §8 "Runners").

use serde::{Deserialize, Serialize};

/// State of a runner. `unresponsive`: no heartbeat within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunnerState {
    Initializing,
    Ready,
    Disabled,
    Decommissioned,
    Unresponsive,
}

impl RunnerState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerState::Initializing => "initializing",
            RunnerState::Ready => "ready",
            RunnerState::Disabled => "disabled",
            RunnerState::Decommissioned => "decommissioned",
            RunnerState::Unresponsive => "unresponsive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RunnerState::Initializing,
            RunnerState::Ready,
            RunnerState::Disabled,
            RunnerState::Decommissioned,
            RunnerState::Unresponsive,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// `POST /api/runners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateRunner {
    pub region_id: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Answer of `POST /api/runners`: the runner token is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateRunnerResponse {
    pub id: String,
    pub api_key: String,
}

/// `PATCH /api/runners/{id}/scheduling`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateRunnerScheduling {
    pub unschedulable: bool,
}

/// `PATCH /api/runners/{id}/draining`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateRunnerDraining {
    pub draining: bool,
}

/// A runner as admins see it (no token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Runner {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    pub cpu: f64,
    /// GiB.
    pub memory: f64,
    /// GiB.
    pub disk: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cpu_usage_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_memory_usage_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_disk_usage_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_allocated_cpu: Option<f64>,
    #[serde(
        rename = "currentAllocatedMemoryGiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_allocated_memory_gib: Option<f64>,
    #[serde(
        rename = "currentAllocatedDiskGiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_allocated_disk_gib: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_snapshot_count: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_started_sandboxes: Option<f64>,
    /// Sandboxes placed on this runner and not destroyed (Cove's scheduling counter).
    pub assigned_sandboxes: i64,
    pub region: String,
    pub name: String,
    pub state: RunnerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<String>,
    pub unschedulable: bool,
    pub draining: bool,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Deprecated in favour of `apiVersion`.
    pub version: String,
    pub api_version: String,
    /// Always `container`.
    pub runner_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

/// A runner with its token (`/full`, `/me`, `/by-sandbox/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerFull {
    #[serde(flatten)]
    pub runner: Runner,
    pub api_key: String,
    /// `shared`.
    pub region_type: String,
}

/// An entry of `GET /api/runners/by-snapshot-ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerSnapshotDto {
    pub runner_snapshot_id: String,
    pub runner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_domain: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_strings_round_trip() {
        for s in [
            "initializing",
            "ready",
            "disabled",
            "decommissioned",
            "unresponsive",
        ] {
            let st = RunnerState::parse(s).expect("known");
            assert_eq!(serde_json::to_value(st).expect("json"), s);
        }
        assert!(RunnerState::parse("gone").is_none());
    }

    #[test]
    fn create_runner_requires_region_and_name() {
        let c: CreateRunner =
            serde_json::from_str(r#"{"regionId":"us","name":"r1"}"#).expect("parse");
        assert!(c.tags.is_empty());
        assert!(serde_json::from_str::<CreateRunner>(r#"{"name":"r1"}"#).is_err());
        let v = serde_json::to_value(CreateRunnerResponse {
            id: "x".into(),
            api_key: "k".into(),
        })
        .expect("json");
        assert_eq!(v, serde_json::json!({"id": "x", "apiKey": "k"}));
    }
}
