//! `/api/sandbox` wire types (CONTRACT §4).
//!
//! The 0.226 client uses `StrictInt` for `cpu/gpu/memory/disk` (GiB for memory and disk), so those
//! are integers; every timestamp is a wire-format string. `toolboxProxyUrl` and `kvm` are required
//! on a [`Sandbox`], `toolboxProxyUrl` and `networkBlockAll` on a [`SandboxListItem`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant,)+
        }

        string_enum_schema!($name);

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Observed state of a sandbox (CONTRACT §4.1).
    SandboxState {
        Creating => "creating",
        Restoring => "restoring",
        Destroyed => "destroyed",
        Destroying => "destroying",
        Started => "started",
        Stopped => "stopped",
        Starting => "starting",
        Stopping => "stopping",
        Error => "error",
        BuildFailed => "build_failed",
        PendingBuild => "pending_build",
        BuildingSnapshot => "building_snapshot",
        Unknown => "unknown",
        PullingSnapshot => "pulling_snapshot",
        Archived => "archived",
        Archiving => "archiving",
        Resizing => "resizing",
        Snapshotting => "snapshotting",
        Forking => "forking",
        Pausing => "pausing",
        Paused => "paused",
        Resuming => "resuming",
    }
}

wire_enum! {
    /// The state a user action asked for (CONTRACT §4.1).
    SandboxDesiredState {
        Destroyed => "destroyed",
        Started => "started",
        Stopped => "stopped",
        Resized => "resized",
        Archived => "archived",
        Paused => "paused",
    }
}

wire_enum! {
    /// Backup progress (capitalized as Daytona sends it).
    BackupState {
        None => "None",
        Pending => "Pending",
        InProgress => "InProgress",
        Completed => "Completed",
        Error => "Error",
    }
}

wire_enum! {
    /// Kind of machine behind a sandbox. Cove runs containers only.
    SandboxClass {
        Container => "container",
        LinuxVm => "linux-vm",
        Windows => "windows",
    }
}

/// A volume mounted into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SandboxVolume {
    pub volume_id: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// `buildInfo` of `POST /sandbox` (declarative build; Cove refuses it with 400).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateBuildInfo {
    pub dockerfile_content: String,
    #[serde(default)]
    pub context_hashes: Option<Vec<String>>,
}

/// `POST /sandbox` body. Every field is optional; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateSandbox {
    #[serde(default)]
    pub name: Option<String>,
    /// Snapshot name or image reference; default: the configured default snapshot.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// OS user; default `daytona`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(default)]
    pub network_block_all: Option<bool>,
    #[serde(default)]
    pub kvm: Option<bool>,
    #[serde(default)]
    pub network_allow_list: Option<String>,
    #[serde(default)]
    pub domain_allow_list: Option<String>,
    /// Beyond Daytona: comma-separated IPv4 CIDRs the sandbox may never reach (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_deny_list: Option<String>,
    /// Beyond Daytona: domain patterns (`example.com`, `*.example.com`) the sandbox may never reach over HTTP/TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_deny_list: Option<String>,
    #[serde(default)]
    pub outbound_proxy_url: Option<String>,
    #[serde(default)]
    pub otel_endpoint_override: Option<String>,
    /// Region id; default `us`.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub cpu: Option<i64>,
    #[serde(default)]
    pub gpu: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub gpu_type: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub spot: Option<bool>,
    /// GiB.
    #[serde(default)]
    pub memory: Option<i64>,
    /// GiB.
    #[serde(default)]
    pub disk: Option<i64>,
    /// Minutes; default 15, 0 = off.
    #[serde(default)]
    pub auto_stop_interval: Option<i64>,
    #[serde(default)]
    pub auto_pause_interval: Option<i64>,
    /// Minutes; default 10080 (7 days).
    #[serde(default)]
    pub auto_archive_interval: Option<i64>,
    /// Minutes; default −1 (off), 0 = delete as soon as it stops.
    #[serde(default)]
    pub auto_delete_interval: Option<i64>,
    /// Deleted instead of stopped (the same as `autoDeleteInterval = 0`, which it sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<bool>,
    #[serde(default)]
    pub ttl_minutes: Option<i64>,
    #[serde(default)]
    pub queue_timeout: Option<i64>,
    #[serde(default)]
    pub volumes: Option<Vec<SandboxVolume>>,
    #[serde(default)]
    pub build_info: Option<CreateBuildInfo>,
    #[serde(default)]
    pub linked_sandbox: Option<String>,
    #[serde(default)]
    pub secrets: Option<Vec<BTreeMap<String, String>>>,
}

/// A sandbox (answer of get/create/start/stop/delete/...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub snapshot: Option<String>,
    pub user: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub public: bool,
    pub network_block_all: bool,
    pub kvm: bool,
    pub network_allow_list: Option<String>,
    pub domain_allow_list: Option<String>,
    /// Beyond Daytona: comma-separated IPv4 CIDRs the sandbox may never reach.
    #[serde(default)]
    pub network_deny_list: Option<String>,
    /// Beyond Daytona: domain patterns the sandbox may never reach over HTTP/TLS.
    #[serde(default)]
    pub domain_deny_list: Option<String>,
    pub outbound_proxy_url: Option<String>,
    pub otel_endpoint_override: Option<String>,
    pub target: String,
    pub cpu: i64,
    pub gpu: i64,
    /// GiB.
    pub memory: i64,
    /// GiB.
    pub disk: i64,
    pub spot: bool,
    pub spot_evicted_at: Option<String>,
    pub queue_timed_out_at: Option<String>,
    pub gpu_type: Option<String>,
    pub state: SandboxState,
    pub desired_state: SandboxDesiredState,
    pub error_reason: Option<String>,
    pub recoverable: bool,
    pub warm_pool_id: Option<String>,
    pub backup_state: BackupState,
    pub backup_created_at: Option<String>,
    pub auto_stop_interval: i64,
    pub auto_pause_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    pub auto_destroy_at: Option<String>,
    pub queue_timeout: Option<i64>,
    pub volumes: Vec<SandboxVolume>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub build_info: Option<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    /// Cove: whether the sandbox's daemon reports work in progress (a session command or
    /// `process/execute` still running, a websocket attached); auto-stop waits while it is.
    #[serde(default)]
    pub busy: bool,
    /// Cove: when the daemon last reported work in progress (counts as activity for auto-stop).
    #[serde(default)]
    pub last_busy_at: Option<String>,
    pub sandbox_class: SandboxClass,
    pub daemon_version: Option<String>,
    pub runner_id: Option<String>,
    pub linked_sandbox_id: Option<String>,
    /// Base URL of the toolbox proxy: the SDK calls `{toolboxProxyUrl}/{id}/<toolbox path>`.
    pub toolbox_proxy_url: String,
}

/// An item of `GET /sandbox`: a [`Sandbox`] without `env, kvm, outboundProxyUrl,
/// otelEndpointOverride, volumes, buildInfo, backupCreatedAt, linkedSandboxId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SandboxListItem {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub target: String,
    pub runner_id: Option<String>,
    pub sandbox_class: SandboxClass,
    pub state: SandboxState,
    pub desired_state: SandboxDesiredState,
    pub snapshot: Option<String>,
    pub user: String,
    pub error_reason: Option<String>,
    pub recoverable: bool,
    pub public: bool,
    pub network_block_all: bool,
    pub network_allow_list: Option<String>,
    pub domain_allow_list: Option<String>,
    /// Beyond Daytona: comma-separated IPv4 CIDRs the sandbox may never reach.
    #[serde(default)]
    pub network_deny_list: Option<String>,
    /// Beyond Daytona: domain patterns the sandbox may never reach over HTTP/TLS.
    #[serde(default)]
    pub domain_deny_list: Option<String>,
    pub cpu: i64,
    pub gpu: i64,
    pub spot: bool,
    pub spot_evicted_at: Option<String>,
    pub queue_timed_out_at: Option<String>,
    pub gpu_type: Option<String>,
    pub memory: i64,
    pub disk: i64,
    pub labels: BTreeMap<String, String>,
    pub backup_state: BackupState,
    pub auto_stop_interval: i64,
    pub auto_pause_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    pub auto_destroy_at: Option<String>,
    pub queue_timeout: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    pub daemon_version: Option<String>,
    pub warm_pool_id: Option<String>,
    pub toolbox_proxy_url: String,
}

impl From<Sandbox> for SandboxListItem {
    fn from(s: Sandbox) -> Self {
        Self {
            id: s.id,
            organization_id: s.organization_id,
            name: s.name,
            target: s.target,
            runner_id: s.runner_id,
            sandbox_class: s.sandbox_class,
            state: s.state,
            desired_state: s.desired_state,
            snapshot: s.snapshot,
            user: s.user,
            error_reason: s.error_reason,
            recoverable: s.recoverable,
            public: s.public,
            network_block_all: s.network_block_all,
            network_allow_list: s.network_allow_list,
            domain_allow_list: s.domain_allow_list,
            network_deny_list: s.network_deny_list,
            domain_deny_list: s.domain_deny_list,
            cpu: s.cpu,
            gpu: s.gpu,
            spot: s.spot,
            spot_evicted_at: s.spot_evicted_at,
            queue_timed_out_at: s.queue_timed_out_at,
            gpu_type: s.gpu_type,
            memory: s.memory,
            disk: s.disk,
            labels: s.labels,
            backup_state: s.backup_state,
            auto_stop_interval: s.auto_stop_interval,
            auto_pause_interval: s.auto_pause_interval,
            auto_archive_interval: s.auto_archive_interval,
            auto_delete_interval: s.auto_delete_interval,
            auto_destroy_at: s.auto_destroy_at,
            queue_timeout: s.queue_timeout,
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_activity_at: s.last_activity_at,
            daemon_version: s.daemon_version,
            warm_pool_id: s.warm_pool_id,
            toolbox_proxy_url: s.toolbox_proxy_url,
        }
    }
}

/// `GET /sandbox` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ListSandboxesResponse {
    pub items: Vec<SandboxListItem>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `PUT /sandbox/{id}/labels` body and answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SandboxLabels {
    pub labels: BTreeMap<String, String>,
}

/// `POST /sandbox/{id}/network-settings` body (CONTRACT §4.4): a field left out keeps its value,
/// except that `networkBlockAll` (either way) clears the allow-lists not given with it, and an
/// allow-list given without `networkBlockAll` turns block-all off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateSandboxNetworkSettings {
    #[serde(default)]
    pub network_block_all: Option<bool>,
    #[serde(default)]
    pub network_allow_list: Option<String>,
    #[serde(default)]
    pub domain_allow_list: Option<String>,
    /// Beyond Daytona: comma-separated IPv4 CIDRs the sandbox may never reach (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_deny_list: Option<String>,
    /// Beyond Daytona: domain patterns (`example.com`, `*.example.com`) the sandbox may never reach over HTTP/TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_deny_list: Option<String>,
}

/// `GET /sandbox/{id}/ports/{port}/preview-url` answer (CONTRACT §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PortPreviewUrl {
    pub sandbox_id: String,
    pub url: String,
    /// The sandbox's preview token (`X-Daytona-Preview-Token`); changes on every start.
    pub token: String,
}

/// `GET /sandbox/{id}/toolbox-proxy-url` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolboxProxyUrl {
    pub url: String,
}

/// `POST /sandbox/{id}/last-activity` body (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateLastActivity {
    #[serde(default)]
    pub activity_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_daytona_strings() {
        for s in SandboxState::ALL {
            let j = serde_json::to_string(s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            assert_eq!(SandboxState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(BackupState::InProgress.as_str(), "InProgress");
        assert_eq!(SandboxState::BuildFailed.as_str(), "build_failed");
        assert_eq!(SandboxClass::LinuxVm.as_str(), "linux-vm");
    }

    #[test]
    fn create_ignores_unknown_fields_and_refuses_bad_maps() {
        let c: CreateSandbox = serde_json::from_str(
            r#"{"env": {}, "labels": {"code-toolbox-language": "python"}, "volumes": [], "whatever": 1}"#,
        )
        .unwrap();
        assert_eq!(c.labels.unwrap()["code-toolbox-language"], "python");
        assert!(serde_json::from_str::<CreateSandbox>(r#"{"labels": {"a": 1}}"#).is_err());
        assert!(serde_json::from_str::<CreateSandbox>(r#"{"cpu": 1.5}"#).is_err());
    }
}
