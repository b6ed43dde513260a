//! The function's settings, read once per instance from Spin variables.

use cove_edge::config::Settings;
use cove_snapshot_jobs::JobSettings;

/// What the snapshots function needs besides the store; every value has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// The built-in image (`default_snapshot`), shown as a general, active snapshot.
    pub default_snapshot: String,
    /// The internal registry (`internal_registry`, `host:port`; empty: none). Builds are
    /// content-addressed under it (`cove_runner_api::build_ref`).
    pub internal_registry: String,
    /// What driving snapshots on the runners needs (the internal registry's account, the size
    /// limit, the key of the organizations' registry passwords).
    pub jobs: JobSettings,
}

impl SnapshotSettings {
    pub const DEFAULT_SNAPSHOT: &'static str = "cove-sandbox-base:latest";
}

impl Settings for SnapshotSettings {
    const VARIABLES: &'static [&'static str] = &[
        "default_snapshot",
        "internal_registry",
        "internal_registry_username",
        "internal_registry_password",
        "max_snapshot_size_gb",
        "scoped_credentials_secret",
    ];

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let jobs = JobSettings::from_lookup(&get);
        let opt = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            default_snapshot: opt("default_snapshot")
                .unwrap_or_else(|| Self::DEFAULT_SNAPSHOT.to_owned()),
            internal_registry: jobs.registry_host().to_owned(),
            jobs,
        }
    }
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}
