//! The control-plane ⇄ runner-agent contract.
//!
//! # Shape: declarative, omicron-style
//!
//! The control plane does not send imperative commands ("create", "start", "stop"). It sends the
//! whole desired state of one sandbox:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `PUT /v1/sandboxes/{id}` | [`SandboxSpec`] (with a `generation`) | 200 [`SandboxStatus`] |
//! | `GET /v1/sandboxes/{id}` | – | 200 [`SandboxStatus`] |
//! | `GET /v1/sandboxes` | – | 200 [`SandboxList`] |
//! | `DELETE /v1/sandboxes/{id}` | – | 200 [`SandboxStatus`] (`destroyed`), also when it never existed |
//! | `POST /v1/sandboxes/{id}/backup` | [`BackupRequest`] | 201 [`BackupResponse`] (`docker commit` to a tag) |
//! | `ANY /v1/sandboxes/{id}/toolbox/{*path}` | toolbox request | the daemon's answer (CONTRACT §10), websockets included |
//! | `GET /v1/info` | – | 200 [`RunnerInfo`] |
//! | `GET /` | – | 200 health, no auth |
//!
//! `PUT` is idempotent: the agent remembers the highest `generation` it applied for each sandbox.
//! A spec with the same generation is a no-op that returns the current status; a lower generation
//! is refused with 409 `STALE_GENERATION`; a higher one is applied (create if missing, then move
//! toward `desiredState`). Only `desiredState` (and `stopTimeoutSecs`) may change after creation;
//! a change of image, resources, env, volumes or network is refused with 409 `IMMUTABLE_FIELD`
//! (destroy and re-create instead).
//!
//! Every route except `GET /` needs `Authorization: Bearer <runner token>`. Errors carry the
//! [`ErrorEnvelope`] body.
//!
//! The runner also calls the control plane: `POST /api/runners/healthcheck` with a
//! [`Healthcheck`] every few seconds (Daytona's payload, ARCH §2, plus the local image tags), and
//! `PUT /api/sandbox/{id}/state` with a [`StateReport`] when it observes a state change outside a
//! `PUT` (a container died; every sandbox once after the agent restarted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "client")]
pub mod client;

/// Labels the agent puts on every container it owns.
pub mod labels {
    /// `"true"` on everything the agent manages.
    pub const MANAGED: &str = "cove.managed";
    /// The sandbox id (absent on warm-pool containers that have not been claimed).
    pub const SANDBOX_ID: &str = "cove.sandbox.id";
    pub const ORG_ID: &str = "cove.org.id";
    /// `"true"` on warm-pool containers (claimed ones keep it; their name carries the sandbox id).
    pub const POOL: &str = "cove.pool";
    /// The snapshot (image reference) the container was created from.
    pub const SNAPSHOT: &str = "cove.snapshot";
    /// Prefix of the user labels of the spec.
    pub const USER_PREFIX: &str = "cove.user.";
}

/// The desired state of one sandbox (body of `PUT /v1/sandboxes/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// Monotonic per sandbox; the agent applies a spec only when it is newer than the last one.
    pub generation: u64,
    /// Image reference of the snapshot (must be present on the runner).
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// User the sandbox runs as; default: the image's user, else `daytona`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    #[serde(default)]
    pub desired_state: DesiredState,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub network: NetworkPolicy,
    /// Grace period of a stop before SIGKILL; `0` stops by force. Default 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_secs: Option<u32>,
    /// `false` forces a fresh container even when a warm one would match (benchmarks, debugging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_warm_pool: Option<bool>,
}

impl SandboxSpec {
    /// A spec with defaults for everything but the image.
    pub fn new(snapshot: impl Into<String>) -> Self {
        Self {
            generation: 1,
            snapshot: snapshot.into(),
            org_id: None,
            os_user: None,
            desired_state: DesiredState::Started,
            resources: Resources::default(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            volumes: Vec::new(),
            network: NetworkPolicy::Allow,
            stop_timeout_secs: None,
            allow_warm_pool: None,
        }
    }

    /// Whether `other` differs from `self` only in the fields that may change after creation.
    pub fn same_shape(&self, other: &SandboxSpec) -> bool {
        self.snapshot == other.snapshot
            && self.org_id == other.org_id
            && self.os_user == other.os_user
            && self.resources == other.resources
            && self.env == other.env
            && self.labels == other.labels
            && self.volumes == other.volumes
            && self.network == other.network
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    #[default]
    Started,
    Stopped,
}

/// Resource limits. `None` means the runner default (1 vCPU, 1 GiB, 3 GiB disk, 4096 pids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Recorded and reported; enforced only where the storage driver supports quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

impl Resources {
    pub fn is_default(&self) -> bool {
        *self == Resources::default()
    }
}

/// A volume bind-mounted into the sandbox: `<runner volumes dir>/<volumeId>[/<subpath>]` at `mountPath`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub volume_id: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// Network policy of the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum NetworkPolicy {
    /// Default bridge network, egress allowed.
    #[default]
    Allow,
    /// No network at all (`network_mode = none`); the toolbox still works over its unix socket.
    BlockAll,
}

/// Observed state (Daytona's runner state strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    Creating,
    Starting,
    Started,
    Stopping,
    Stopped,
    Destroying,
    Destroyed,
    Error,
    Unknown,
}

/// What the agent reports about a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    pub id: String,
    pub state: SandboxState,
    /// The generation of the last applied spec (0 when unknown, e.g. recovered from Docker only).
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<DesiredState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Whether the container came from the warm pool.
    #[serde(default)]
    pub warm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
}

impl SandboxStatus {
    pub fn destroyed(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: SandboxState::Destroyed,
            generation: 0,
            desired_state: None,
            container_id: None,
            snapshot: None,
            org_id: None,
            warm: false,
            daemon_version: None,
            error_reason: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxList {
    pub sandboxes: Vec<SandboxStatus>,
}

/// `POST /v1/sandboxes/{id}/backup`: commit the container's filesystem to `image` (`repo:tag`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResponse {
    pub image: String,
    /// Image id (`sha256:...`).
    pub image_id: String,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerInfo {
    pub app_version: String,
    pub metrics: RunnerMetrics,
    /// Warm containers ready per snapshot.
    #[serde(default)]
    pub warm_pool: BTreeMap<String, usize>,
}

/// Capacity metrics (Daytona's `RunnerHealthMetrics`, ARCH §2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerMetrics {
    pub cpu: u32,
    #[serde(rename = "memoryGiB")]
    pub memory_gib: f64,
    #[serde(rename = "diskGiB")]
    pub disk_gib: f64,
    pub current_cpu_usage_percentage: f64,
    pub current_memory_usage_percentage: f64,
    pub current_disk_usage_percentage: f64,
    pub current_allocated_cpu: f64,
    #[serde(rename = "currentAllocatedMemoryGiB")]
    pub current_allocated_memory_gib: f64,
    #[serde(rename = "currentAllocatedDiskGiB")]
    pub current_allocated_disk_gib: f64,
    pub current_snapshot_count: u32,
    pub current_started_sandboxes: u32,
}

/// Body of `POST /api/runners/healthcheck` (runner → control plane).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Where the control plane reaches this runner's API.
    pub api_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    pub app_version: String,
    pub metrics: RunnerMetrics,
    #[serde(default)]
    pub service_health: Vec<ServiceHealth>,
    /// Image references present on the runner (local image tags), for snapshot-aware scheduling.
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// Body of `PUT /api/sandbox/{id}/state` (runner → control plane): a sandbox state the agent
/// observed outside a `PUT` (the container died, or the agent recovered after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReport {
    pub state: SandboxState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    pub service_name: String,
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
}

/// The error body of every non-2xx agent answer (the envelope of CONTRACT §2, `source = "COVE_RUNNER"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    pub path: String,
    pub timestamp: String,
    pub status_code: u16,
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub source: String,
}

/// `source` of agent errors.
pub const RUNNER_SOURCE: &str = "COVE_RUNNER";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_and_wire_names() {
        let spec: SandboxSpec =
            serde_json::from_str(r#"{"generation":3,"snapshot":"img:1"}"#).expect("parse");
        assert_eq!(spec.desired_state, DesiredState::Started);
        assert_eq!(spec.network, NetworkPolicy::Allow);
        assert!(spec.resources.is_default());
        let mut s = SandboxSpec::new("img");
        s.network = NetworkPolicy::BlockAll;
        s.resources.memory_mib = Some(256);
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["network"], serde_json::json!({"mode": "blockAll"}));
        assert_eq!(v["resources"]["memoryMib"], 256);
        assert_eq!(v["desiredState"], "started");
    }

    #[test]
    fn same_shape_ignores_desired_state_only() {
        let a = SandboxSpec::new("img");
        let mut b = a.clone();
        b.desired_state = DesiredState::Stopped;
        b.generation = 9;
        assert!(a.same_shape(&b));
        b.env.insert("A".into(), "1".into());
        assert!(!a.same_shape(&b));
    }

    #[test]
    fn healthcheck_payload_is_daytonas() {
        let h = Healthcheck {
            domain: None,
            api_url: "http://10.0.0.1:3003".into(),
            proxy_url: None,
            app_version: "0.1.0".into(),
            metrics: RunnerMetrics {
                cpu: 4,
                current_started_sandboxes: 2,
                ..Default::default()
            },
            service_health: vec![],
            snapshots: vec!["img:1".into()],
        };
        let v = serde_json::to_value(&h).expect("json");
        assert_eq!(v["apiUrl"], "http://10.0.0.1:3003");
        assert_eq!(v["metrics"]["currentStartedSandboxes"], 2);
        assert!(v["metrics"].get("memoryGiB").is_some());
        assert!(v["metrics"].get("currentAllocatedDiskGiB").is_some());
        assert_eq!(v["snapshots"], serde_json::json!(["img:1"]));
        let old: Healthcheck = serde_json::from_str(
            r#"{"apiUrl":"http://x","appVersion":"1","metrics":{"cpu":1,"memoryGiB":1,"diskGiB":1,"currentCpuUsagePercentage":0,"currentMemoryUsagePercentage":0,"currentDiskUsagePercentage":0,"currentAllocatedCpu":0,"currentAllocatedMemoryGiB":0,"currentAllocatedDiskGiB":0,"currentSnapshotCount":0,"currentStartedSandboxes":0}}"#,
        )
        .expect("payload without snapshots");
        assert!(old.snapshots.is_empty());
    }

    #[test]
    fn state_strings() {
        assert_eq!(
            serde_json::to_value(SandboxState::Started).expect("json"),
            "started"
        );
        assert_eq!(
            serde_json::to_value(SandboxState::Destroyed).expect("json"),
            "destroyed"
        );
    }
}
