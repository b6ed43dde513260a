//! Toolbox wire types of the sandbox itself: resource metrics (`GET /system/metrics`), listening
//! ports (`GET /port`, `GET /port/{port}/in-use`) and the daemon's environment (`POST /env`).
//! Keys are camelCase, as in Daytona's document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /system/metrics`: a point-in-time snapshot of the sandbox's CPU, memory and disk use.
/// Byte fields are bytes; `cpuUsedPct` is a percentage of the CPU limit (0..=100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SystemMetrics {
    /// RFC 3339 UTC, whole seconds (`2026-01-01T00:00:00Z`).
    pub timestamp: String,
    pub timestamp_unix: i64,
    /// CPUs the sandbox may use: its CPU limit rounded up, at least 1.
    pub cpu_count: u32,
    /// Average use over the last sample window, as a percentage of the CPU limit.
    pub cpu_used_pct: f64,
    pub mem_used: u64,
    pub mem_total: u64,
    /// Page cache (part of `memUsed`).
    pub mem_cache: u64,
    pub disk_used: u64,
    pub disk_total: u64,
    /// Free for unprivileged use.
    pub disk_free: u64,
}

/// `GET /port`: the TCP ports something listens on in the sandbox, ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortList {
    pub ports: Vec<u16>,
}

/// `GET /port/{port}/in-use`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct IsPortInUseResponse {
    pub is_in_use: bool,
}

/// `POST /env`: changes the environment of the processes the daemon starts from now on
/// (commands, sessions, language servers); running ones keep theirs. Applied in this order:
/// `unsetValuePrefix`, `unset`, `set`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateEnvRequest {
    /// Names to values to set.
    #[serde(default)]
    pub set: Option<BTreeMap<String, String>>,
    /// Names to remove before `set` is applied.
    #[serde(default)]
    pub unset: Option<Vec<String>>,
    /// Removes every variable whose value starts with this prefix and whose name is not a key
    /// of `set`, before `set` is applied (an empty prefix removes nothing).
    #[serde(default)]
    pub unset_value_prefix: Option<String>,
}

/// `POST /env`'s answer: `{"message": "Environment updated successfully"}`, as Daytona's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateEnvResponse {
    pub message: String,
}
