//! The function's settings, read once per instance from Spin variables.

use cove_edge::config::Settings;

/// What the snapshots function needs besides the store; every value has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// The built-in image (`default_snapshot`), shown as a general, active snapshot.
    pub default_snapshot: String,
    /// The internal registry (`internal_registry`, `host:port`; empty: none). Builds are
    /// content-addressed under it (`cove_runner_api::build_ref`).
    pub internal_registry: String,
}

impl SnapshotSettings {
    pub const DEFAULT_SNAPSHOT: &'static str = "cove-sandbox-base:latest";
}

impl Settings for SnapshotSettings {
    const VARIABLES: &'static [&'static str] = &["default_snapshot", "internal_registry"];

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let opt = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            default_snapshot: opt("default_snapshot")
                .unwrap_or_else(|| Self::DEFAULT_SNAPSHOT.to_owned()),
            internal_registry: opt("internal_registry").unwrap_or_default(),
        }
    }
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}
