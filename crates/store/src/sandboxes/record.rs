//! The sandbox row's record and what follows from it alone.

use std::collections::BTreeMap;

use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId, VolumeId};
use cove_api_types::sandbox::{BackupState, SandboxDesiredState, SandboxState};
use serde::{Deserialize, Serialize};

use super::usage::SandboxUsage;

/// A volume mounted into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxVolume {
    pub volume_id: VolumeId,
    pub mount_path: String,
    #[serde(default)]
    pub subpath: Option<String>,
}

/// What a state change in flight does (see [`Transition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SandboxAction {
    /// A new sandbox's first spec (desired `started`).
    Create,
    /// A stopped container started again.
    Start,
    /// An archived sandbox re-created from its backup (desired `started`).
    Restore,
    Stop,
    /// Backup, then remove the container (desired `archived`).
    Archive,
    /// An ad-hoc backup (the state does not change).
    Backup,
    /// Remove the container (and the backups: see [`SandboxRecord::backup_runner_id`]).
    Destroy,
    /// A started sandbox's new egress policy (`network-settings`): the same spec, desired
    /// `started`, a new generation; the container stays.
    Network,
}

impl SandboxAction {
    pub const ALL: &'static [SandboxAction] = &[
        Self::Create,
        Self::Start,
        Self::Restore,
        Self::Stop,
        Self::Archive,
        Self::Backup,
        Self::Destroy,
        Self::Network,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Restore => "restore",
            Self::Stop => "stop",
            Self::Archive => "archive",
            Self::Backup => "backup",
            Self::Destroy => "destroy",
            Self::Network => "network",
        }
    }
}

impl std::fmt::Display for SandboxAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change in flight on the row: written by the conditional write that begins it, cleared
/// by the write that settles it (the runner's answer, its state report, or the lifecycle sweep,
/// which pushes it again past its deadline or gives up with an error). An instance that dies
/// between begin and settle leaves it behind for the sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub action: SandboxAction,
    /// The sandbox's `generation` when it began: the one its spec carries.
    pub generation: u64,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// When it was last pushed to the runner (RFC 3339).
    pub pushed_at: String,
    /// Pushes so far (the first one included).
    pub attempts: u32,
    /// `stop?force=true` (SIGKILL) or `delete?force=true` (let go without the runner).
    #[serde(default)]
    pub force: bool,
}

impl Transition {
    /// A transition beginning `now` (its first push is counted).
    pub fn begin(action: SandboxAction, generation: u64, now: &str, force: bool) -> Self {
        Self {
            action,
            generation,
            started_at: now.to_owned(),
            pushed_at: now.to_owned(),
            attempts: 1,
            force,
        }
    }

    /// Whether `other` is this same transition (maybe pushed again since).
    pub fn same(&self, other: &Transition) -> bool {
        self.action == other.action
            && self.generation == other.generation
            && self.started_at == other.started_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    pub id: SandboxId,
    pub org_id: OrganizationId,
    pub name: String,
    /// Image reference the runner runs.
    pub snapshot: String,
    /// OS user, default `daytona`.
    pub user: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub network_block_all: bool,
    #[serde(default)]
    pub network_allow_list: Option<String>,
    /// Comma-separated CIDRs the sandbox may never reach (beyond Daytona).
    #[serde(default)]
    pub network_deny_list: Option<String>,
    #[serde(default)]
    pub domain_allow_list: Option<String>,
    /// Comma-separated domain patterns the sandbox may never reach (beyond Daytona).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_deny_list: Option<String>,
    /// Whether the container was made without a network interface (`networkBlockAll` at create);
    /// `None` in rows written before the field: then `network_block_all`. A block-all set later
    /// (`network-settings`) is enforced by the runner's rules and leaves this `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_none: Option<bool>,
    /// Region id, default `us`.
    pub target: String,
    pub cpu: i64,
    #[serde(default)]
    pub gpu: i64,
    /// GiB.
    pub memory: i64,
    /// GiB.
    pub disk: i64,
    /// Stored as Daytona's `SandboxState` string (CONTRACT §4.1).
    pub state: SandboxState,
    /// Stored as Daytona's `SandboxDesiredState` string.
    pub desired_state: SandboxDesiredState,
    #[serde(default)]
    pub pending: bool,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub recoverable: bool,
    /// Stored as Daytona's `BackupState` string (`None` | `Pending` | `InProgress` | ...).
    pub backup_state: BackupState,
    #[serde(default)]
    pub backup_snapshot: Option<String>,
    #[serde(default)]
    pub backup_created_at: Option<String>,
    /// When the lifecycle sweep's periodic backup in progress began (`None`: no such backup; a
    /// transition's backup clears it, so the periodic one's outcome is not written over it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_started_at: Option<String>,
    pub auto_stop_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    #[serde(default)]
    pub auto_pause_interval: i64,
    #[serde(default)]
    pub volumes: Vec<SandboxVolume>,
    #[serde(default)]
    pub runner_id: Option<RunnerId>,
    /// Preview token (32 lowercase alphanumerics), see [`generate_auth_token`].
    pub auth_token: String,
    /// HMAC key of the sandbox's signed file URLs (CONTRACT §10.7, 64 hex digits); made on the
    /// first `GET /sandbox/{id}/signing-key`, replaced by a rotation (which invalidates every
    /// URL signed with the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_signing_key: Option<String>,
    #[serde(default)]
    pub daemon_version: Option<String>,
    /// Last `SandboxSpec` generation sent to the runner (bumped by every state change).
    #[serde(default)]
    pub generation: u64,
    /// The state change in flight, `None` once settled.
    #[serde(default)]
    pub transition: Option<Transition>,
    /// The runner holding the sandbox's backup images: restores are scheduled there. On a
    /// destroyed sandbox: its backups still have to be removed from that runner (the lifecycle
    /// sweep retries until done).
    #[serde(default)]
    pub backup_runner_id: Option<RunnerId>,
    /// The image the sandbox's container was created from (its snapshot, or the backup it was
    /// restored from); `None` when it has no container.
    #[serde(default)]
    pub container_image: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    /// Whether the sandbox's toolbox daemon last reported work in progress (a session command or
    /// `process/execute` still running, a PTY or websocket attached): auto-stop waits while it is.
    #[serde(default)]
    pub busy: bool,
    /// When the daemon last reported the sandbox busy (the end of its last work, once it is idle
    /// again); counts as activity.
    #[serde(default)]
    pub last_busy_at: Option<String>,
    /// When the sandbox is destroyed whatever its state (`ttlMinutes` on create, or
    /// `POST /sandbox/{id}/ttl/{ttlMinutes}`); `None`: no TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_destroy_at: Option<String>,
    /// Minutes a create may wait for a runner (`queueTimeout`); without it a create that finds
    /// no runner is refused at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout: Option<i64>,
    /// While the sandbox waits for a runner (queued, no runner yet): when it stops waiting. The
    /// lifecycle sweep places it as soon as a runner is available, or destroys it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_until: Option<String>,
    /// When the sandbox was destroyed because no runner took it within `queueTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timed_out_at: Option<String>,
    /// Optimistic concurrency; 0 before the first write.
    pub version: u64,
}

impl SandboxRecord {
    /// A sandbox in `creating` / desired `started` with Daytona's defaults (1 CPU, 1 GiB memory,
    /// 3 GiB disk, user `daytona`, region `us`, auto-stop 15 min, auto-archive 7 days, no
    /// auto-delete), no runner and an empty `auth_token` (set it with [`generate_auth_token`]).
    pub fn new(
        id: SandboxId,
        org_id: OrganizationId,
        name: impl Into<String>,
        snapshot: impl Into<String>,
        now: &str,
    ) -> Self {
        Self {
            id,
            org_id,
            name: name.into(),
            snapshot: snapshot.into(),
            user: "daytona".into(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            public: false,
            network_block_all: false,
            network_allow_list: None,
            network_deny_list: None,
            domain_allow_list: None,
            domain_deny_list: None,
            network_none: None,
            target: crate::runners::DEFAULT_REGION.into(),
            cpu: 1,
            gpu: 0,
            memory: 1,
            disk: 3,
            state: SandboxState::Creating,
            desired_state: SandboxDesiredState::Started,
            pending: false,
            error_reason: None,
            recoverable: false,
            backup_state: BackupState::None,
            backup_snapshot: None,
            backup_created_at: None,
            backup_started_at: None,
            auto_stop_interval: 15,
            auto_archive_interval: 10080,
            auto_delete_interval: -1,
            auto_pause_interval: 0,
            volumes: Vec::new(),
            runner_id: None,
            auth_token: String::new(),
            file_signing_key: None,
            daemon_version: None,
            generation: 0,
            transition: None,
            backup_runner_id: None,
            container_image: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            last_activity_at: now.to_owned(),
            busy: false,
            last_busy_at: None,
            auto_destroy_at: None,
            queue_timeout: None,
            queued_until: None,
            queue_timed_out_at: None,
            version: 0,
        }
    }

    /// Ephemeral: deleted instead of stopped (`autoDeleteInterval = 0`, or `ephemeral` on create).
    pub fn is_ephemeral(&self) -> bool {
        self.auto_delete_interval == 0
    }

    /// Whether the sandbox's container has no network interface (see [`Self::network_none`]).
    pub fn has_no_network(&self) -> bool {
        self.network_none.unwrap_or(self.network_block_all)
    }

    pub fn is_destroyed(&self) -> bool {
        self.state == SandboxState::Destroyed
    }

    /// Waiting in the queue for a runner (see [`Self::queued_until`]).
    pub fn is_queued(&self) -> bool {
        self.queued_until.is_some() && self.runner_id.is_none() && !self.is_destroyed()
    }

    /// Its last backup is complete and in a registry (not the `cove-backup/` images a runner
    /// keeps locally), so any runner can restore it.
    pub fn has_portable_backup(&self) -> bool {
        self.backup_state == BackupState::Completed
            && self
                .backup_snapshot
                .as_deref()
                .is_some_and(|b| !b.starts_with(&format!("{}/", cove_runner_api::BACKUP_REPO)))
    }

    /// A destroyed sandbox whose backups are still on a runner.
    pub fn has_backups_to_remove(&self) -> bool {
        self.is_destroyed() && self.backup_runner_id.is_some()
    }

    /// What this sandbox adds to its organization's usage counters in its current state.
    pub fn consumption(&self) -> SandboxUsage {
        SandboxUsage::of(self)
    }

    /// The name lock this sandbox holds (none once destroyed).
    pub(crate) fn held_name(&self) -> Option<&str> {
        (!self.is_destroyed()).then_some(self.name.as_str())
    }

    /// The runner whose `assignedSandboxes` counts this sandbox.
    pub(crate) fn counted_runner(&self) -> Option<&RunnerId> {
        if self.is_destroyed() {
            None
        } else {
            self.runner_id.as_ref()
        }
    }
}

/// A fresh preview token: 32 characters of `[a-z0-9]` from the platform's secure random source.
pub fn generate_auth_token() -> Result<String, getrandom::Error> {
    crate::random::alphanumeric(32)
}

/// The control-plane state of a sandbox whose runner reports `observed` (the runner's states are
/// Daytona's where they overlap).
pub fn observed_state(observed: cove_runner_api::SandboxState) -> SandboxState {
    use cove_runner_api::SandboxState as R;
    match observed {
        R::Creating => SandboxState::Creating,
        R::Starting => SandboxState::Starting,
        R::Started => SandboxState::Started,
        R::Stopping => SandboxState::Stopping,
        R::Stopped => SandboxState::Stopped,
        R::Destroying => SandboxState::Destroying,
        R::Destroyed => SandboxState::Destroyed,
        R::Error => SandboxState::Error,
        R::Unknown => SandboxState::Unknown,
    }
}
