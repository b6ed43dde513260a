//! The control-plane ⇄ runner-agent contract.
//!
//! # Shape: declarative, omicron-style
//!
//! The control plane does not send imperative commands ("create", "start", "stop"). It sends the
//! whole desired state of one sandbox:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `PUT /v1/sandboxes/{id}?wait=SECONDS` | [`SandboxSpec`] (with a `generation`) | 200 [`SandboxStatus`] (reached) or 202 [`SandboxStatus`] (still converging) |
//! | `GET /v1/sandboxes/{id}` | – | 200 [`SandboxStatus`] |
//! | `GET /v1/sandboxes` | – | 200 [`SandboxList`] |
//! | `GET /v1/sandboxes/{id}/metrics?from=MS&to=MS` | – | 200 [`SandboxMetrics`]: usage samples in memory ([`metrics`]) |
//! | `DELETE /v1/sandboxes/{id}` | – | 200 [`SandboxStatus`] (`destroyed`), also when it never existed; backups stay |
//! | `POST /v1/sandboxes/{id}/backup` | [`BackupRequest`] (optional) | 201 [`BackupResponse`] (`docker commit` to a name the agent picks) |
//! | `DELETE /v1/backups/{sandboxId}` | – | 200 [`BackupRemoval`]: every backup image of the sandbox |
//! | `ANY /v1/sandboxes/{id}/toolbox/{*path}` | toolbox request | the daemon's answer (CONTRACT §10), websockets included |
//! | `PUT /v1/snapshots/{key}?wait=SECONDS` | [`SnapshotSpec`] | 200 [`SnapshotStatus`] (`ready`/`error`) or 202 (in progress) |
//! | `GET /v1/snapshots/{key}` | – | 200 [`SnapshotStatus`]; 404 `SNAPSHOT_NOT_FOUND` |
//! | `GET /v1/snapshots/{key}/logs?follow=BOOL` | – | 200 `text/plain` pull/build log, streamed with `follow=true` |
//! | `DELETE /v1/snapshots/{key}` | – | 200 [`SnapshotRemoval`] (`removed: false` while a container uses the image) |
//! | `GET /v1/info` | – | 200 [`RunnerInfo`] |
//! | `GET /` | – | 200 health, no auth |
//!
//! Snapshot jobs (pull, build, push to the internal registry) are described in [`snapshots`].
//!
//! With `--runtime fake` only, fault injection for tests ([`fake`]):
//! `POST /v1/fake/sandboxes/{id}/crash` and `POST /v1/fake/delay` ([`fake::FakeDelay`]).
//!
//! `PUT` is idempotent: the agent remembers the highest `generation` it accepted for each sandbox.
//! A spec with the generation already applied is a no-op that returns the current status; the
//! generation being applied right now is joined (no restart); a lower generation is refused with
//! 409 `STALE_GENERATION`; a higher one is applied (create if missing, then move toward
//! `desiredState`). Only `desiredState`, `egress` (and `stopTimeoutSecs`) may change after creation; a
//! change of image, resources, env, volumes or network is refused with 409 `IMMUTABLE_FIELD`
//! (destroy and re-create instead).
//!
//! **Bounded.** A `PUT` waits at most `wait` seconds ([`PutQuery`]: default
//! [`DEFAULT_WAIT_SECS`], at most [`MAX_WAIT_SECS`]) for the desired state. When it is not
//! reached by then the answer is **202** with the current, transitional status (`creating`,
//! `starting`, `stopping`); the agent goes on in the background and sends the outcome as a
//! [`StateReport`] carrying the `generation` and the `desiredState` it settles.
//!
//! Every route except `GET /` needs `Authorization: Bearer <runner token>`. Errors carry the
//! [`ErrorEnvelope`] body.
//!
//! The runner also calls the control plane: `POST /api/runners/healthcheck` with a
//! [`Healthcheck`] every few seconds (Daytona's payload, ARCH §2, plus the snapshot images it
//! holds), and `PUT /api/sandbox/{id}/state` with a [`StateReport`] when it observes a state
//! change outside a `PUT` (a container died; every sandbox once after the agent restarted) and
//! when a `PUT` answered 202 settles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "client-core")]
pub mod client;
pub mod fake;
pub mod metrics;
pub mod snapshots;

pub use metrics::{MetricSample, MetricsQuery, SandboxMetrics};
pub use snapshots::{
    LogsQuery, PushTarget, RegistryAuth, SnapshotJobState, SnapshotRemoval, SnapshotSource,
    SnapshotSpec, SnapshotStatus, build_ref,
};

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
    /// The runner id of the agent that owns a container or a backup image.
    pub const RUNNER: &str = "cove.runner";
    /// On backup images: the sandbox the backup belongs to.
    pub const BACKUP_SANDBOX: &str = "cove.backup.sandbox";
    /// On backup images: the organization of that sandbox (empty when unknown).
    pub const BACKUP_ORG: &str = "cove.backup.org";
    /// On backup images: creation time (unix milliseconds), to order the backups of a sandbox.
    pub const BACKUP_CREATED: &str = "cove.backup.created";
}

/// Repository of the backup images (`cove-backup/<128-bit random hex>:<unix ms>`).
pub const BACKUP_REPO: &str = "cove-backup";

/// Default of [`PutQuery::wait`].
pub const DEFAULT_WAIT_SECS: u32 = 15;
/// Upper bound of [`PutQuery::wait`] (larger values are clamped).
pub const MAX_WAIT_SECS: u32 = 30;

/// Query of `PUT /v1/sandboxes/{id}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase")]
pub struct PutQuery {
    /// Seconds to wait for the desired state before answering 202 (default 15, at most 30;
    /// 0 answers at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u32>,
}

impl PutQuery {
    /// The effective wait.
    pub fn wait_secs(&self) -> u32 {
        self.wait.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS)
    }
}

/// The desired state of one sandbox (body of `PUT /v1/sandboxes/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The sandbox's own egress rules on top of the isolation; unlike `network` it may change
    /// from one generation to the next (applied to the running sandbox without a restart).
    #[serde(default, skip_serializing_if = "EgressPolicy::is_open")]
    pub egress: EgressPolicy,
    /// Grace period of a stop before SIGKILL; `0` stops by force. Default 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_secs: Option<u32>,
    /// `false` forces a fresh container even when a warm one would match (benchmarks, debugging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_warm_pool: Option<bool>,
    /// Credentials to pull `snapshot` with when the image is not on the runner (not part of the
    /// sandbox's shape: they may rotate between generations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_auth: Option<RegistryAuth>,
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
            egress: EgressPolicy::default(),
            stop_timeout_secs: None,
            allow_warm_pool: None,
            image_auth: None,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    #[default]
    Started,
    Stopped,
}

/// Resource limits. `None` means the runner default (1 vCPU, 1 GiB, 3 GiB disk, 4096 pids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub volume_id: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// Where a volume's files live in the object storage's bucket: every object under
/// `volumes/<volumeId>/` (the runner agent mounts that prefix; the control plane provisions and
/// empties it).
pub fn volume_prefix(volume_id: &str) -> String {
    format!("volumes/{volume_id}")
}

/// The marker object of a provisioned volume (outside its prefix, so mounts never show it),
/// carrying the volume's and organization's ids as metadata and tags.
pub fn volume_marker(volume_id: &str) -> String {
    format!("volumes/{volume_id}.volume")
}

/// Network policy of the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum NetworkPolicy {
    /// The agent's isolated sandbox bridge (`cove-sandboxes`): internet egress allowed, other
    /// sandboxes and the host unreachable.
    #[default]
    Allow,
    /// No network at all (`network_mode = none`); the toolbox still works over its unix socket.
    BlockAll,
}

/// A sandbox's egress policy (enforced by the agent in the sandbox's traffic path, on top of the
/// isolation rules, which always win: other sandboxes, the host and link-local stay unreachable
/// whatever the lists say). Entries are IPv4 CIDRs (`10.1.2.0/24`) or addresses; one the agent
/// cannot parse or apply leaves the sandbox in `error` (and stopped), never open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EgressPolicy {
    /// No egress at all (`networkBlockAll` turned on for a sandbox that has a network).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_all: bool,
    /// When not empty: only these destinations (`networkAllowList`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Never these destinations (`networkDenyList`; wins over `allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// When not empty: HTTP/TLS (ports 80, 443) only to these names (`domainAllowList`; exact
    /// names or `*.` wildcards), decided on the `Host` header / TLS SNI by the agent's egress
    /// proxy; other ports are then refused unless `allow` lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_allow: Vec<String>,
    /// Never these names over HTTP/TLS (`domainDenyList`; wins over `domain_allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_deny: Vec<String>,
}

impl EgressPolicy {
    /// No restriction beyond the isolation.
    pub fn is_open(&self) -> bool {
        !self.block_all
            && self.allow.is_empty()
            && self.deny.is_empty()
            && self.domain_allow.is_empty()
            && self.domain_deny.is_empty()
    }
}

/// Allowed or denied (a decision of the egress policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EgressVerdict {
    Allowed,
    Denied,
}

/// One egress connection attempt of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EgressDecision {
    /// RFC 3339, UTC.
    pub time: String,
    /// `address:port` the sandbox connected to.
    pub destination: String,
    /// The TLS SNI or HTTP `Host` when one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub verdict: EgressVerdict,
    /// Why a connection was denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What decided: `proxy` (the egress proxy, domain lists), `cidr` (the firewall's CIDR
    /// rules) or `isolation` (the isolation rules), the last two logged through NFLOG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The last egress attempts of a sandbox, oldest first (`GET /v1/sandboxes/{id}/network-log`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NetworkLog {
    pub entries: Vec<EgressDecision>,
    /// Most entries kept per sandbox.
    pub capacity: u32,
}

/// Observed state (Daytona's runner state strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SandboxList {
    pub sandboxes: Vec<SandboxStatus>,
}

/// `POST /v1/sandboxes/{id}/backup` (the body may be empty): commit the container's filesystem
/// to a new image whose name the agent picks (`cove-backup/<random>:<ms>`, never guessable),
/// labelled with the sandbox and its organization, then (with `push`) push it to a registry.
/// Older backups of the sandbox on this runner are removed once the new one exists.
///
/// The backup runs on in the agent when the request goes away (a client timeout): a request
/// with the `key` of a backup in flight or completed joins it or answers its result instead of
/// committing again, so a retried transition costs one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    /// Ignored (accepted from older control planes): the agent names backup images itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Names one backup (the control plane sends its transition's); empty: always a new one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Where the backup goes after the commit: `{registry}/{project}/backup-{sandboxId}:{ms}`,
    /// `project` being the sandbox's organization's (`cove-{orgId}`). The answer's `image` is
    /// then that reference, which any runner can pull. `None`: it stays on this runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BackupResponse {
    /// The backup image (`repo:tag`) to restore from (`snapshot` of a later `PUT`).
    pub image: String,
    /// Image id (`sha256:...`).
    pub image_id: String,
}

/// `DELETE /v1/backups/{sandboxId}`: what was removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BackupRemoval {
    /// Backup images removed now.
    pub removed: Vec<String>,
    /// Backup images still used by a container: removed once that container is gone.
    #[serde(default)]
    pub deferred: Vec<String>,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerInfo {
    pub app_version: String,
    pub metrics: RunnerMetrics,
    /// Warm containers ready per snapshot.
    #[serde(default)]
    pub warm_pool: BTreeMap<String, usize>,
    /// The snapshot images this runner holds (as in [`Healthcheck::snapshots`]).
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// Capacity metrics (Daytona's `RunnerHealthMetrics`, ARCH §2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Snapshot images present on the runner, for snapshot-aware scheduling: the configured
    /// snapshot and warm-pool images and images labelled `cove.snapshot`; never backup images
    /// nor other local tags.
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// Body of `PUT /api/sandbox/{id}/state` (runner → control plane), the one state-report type of
/// sender and receiver: a sandbox state the agent observed outside a `PUT` (the container died,
/// the agent recovered after a restart), or the outcome of a `PUT` that answered 202.
///
/// Wire-compatible with the older body (`state`, `errorReason?`, `recoverable?`): the new
/// fields are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StateReport {
    pub state: SandboxState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable: Option<bool>,
    /// The generation of the spec the agent holds for the sandbox (0: none, recovered from Docker
    /// only). A report settles the control plane's action of that generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The desired state of that generation. `state == desiredState` means it was reached;
    /// `error` means it failed (see `errorReason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<DesiredState>,
    /// Why the report was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ReportCause>,
    /// Whether the sandbox's daemon reports work in progress (a running command, an attached
    /// websocket); sent when it changes (cause `activity`). `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<bool>,
    /// When the daemon last saw work in progress (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_busy_at: Option<String>,
}

impl StateReport {
    /// The report of a status.
    pub fn of(status: &SandboxStatus, cause: ReportCause) -> Self {
        Self {
            state: status.state,
            error_reason: status.error_reason.clone(),
            recoverable: (status.state == SandboxState::Error).then_some(false),
            generation: Some(status.generation),
            desired_state: status.desired_state,
            cause: Some(cause),
            busy: None,
            last_busy_at: None,
        }
    }

    /// Whether this report says the desired state of `generation` was reached.
    pub fn settles(&self, generation: u64) -> bool {
        self.generation == Some(generation)
            && match self.desired_state {
                Some(DesiredState::Started) => self.state == SandboxState::Started,
                Some(DesiredState::Stopped) => self.state == SandboxState::Stopped,
                None => false,
            }
    }
}

/// Why a [`StateReport`] was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum ReportCause {
    /// A `PUT` that answered 202 finished (reached its desired state, or failed: `error`).
    Applied,
    /// The container changed state behind the agent's back (died, OOM, stopped outside).
    Observed,
    /// Once per sandbox after the agent started.
    Recovered,
    /// The sandbox became busy or idle (see [`StateReport::busy`]).
    Activity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    pub service_name: String,
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
}

/// The error body of every non-2xx agent answer (the envelope of CONTRACT §2, `source = "COVE_RUNNER"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        assert!(v.get("imageAuth").is_none());
        s.image_auth = Some(RegistryAuth {
            username: "u".into(),
            password: "p".into(),
            server: "127.0.0.1:5000".into(),
        });
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["imageAuth"]["server"], "127.0.0.1:5000");
        let back: SandboxSpec = serde_json::from_value(v).expect("parse");
        assert_eq!(back, s);
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
    fn state_report_is_wire_compatible_with_the_old_body() {
        // The older body (`state`, `errorReason?`, `recoverable?`) still parses.
        let old: StateReport =
            serde_json::from_str(r#"{"state":"stopped","errorReason":"x","recoverable":false}"#)
                .expect("old body");
        assert_eq!(old.state, SandboxState::Stopped);
        assert_eq!(old.generation, None);
        let mut st = SandboxStatus::destroyed("sb");
        st.state = SandboxState::Started;
        st.generation = 4;
        st.desired_state = Some(DesiredState::Started);
        let r = StateReport::of(&st, ReportCause::Applied);
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"state":"started","generation":4,"desiredState":"started","cause":"applied"})
        );
        assert!(r.settles(4));
        assert!(!r.settles(5));
        st.state = SandboxState::Error;
        assert!(!StateReport::of(&st, ReportCause::Applied).settles(4));
    }

    #[test]
    fn put_wait_is_bounded() {
        assert_eq!(PutQuery::default().wait_secs(), DEFAULT_WAIT_SECS);
        assert_eq!(PutQuery { wait: Some(600) }.wait_secs(), MAX_WAIT_SECS);
        assert_eq!(PutQuery { wait: Some(0) }.wait_secs(), 0);
        let b: BackupRequest = serde_json::from_str("{}").expect("empty backup body");
        assert!(b.key.is_empty() && b.push.is_none());
        assert!(b.image.is_empty());
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
