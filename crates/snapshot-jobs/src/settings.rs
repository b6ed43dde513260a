//! What the driver needs from Spin variables.

use cove_edge::config::Settings;
use cove_runner_api::RegistryAuth;

/// The internal registry and the account runners use with it (`internal_registry`,
/// `internal_registry_username`, `internal_registry_password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccount {
    /// `host:port`, no scheme.
    pub host: String,
    pub username: String,
    pub password: String,
}

impl RegistryAccount {
    /// The credentials runners present to it (none when the registry has no account).
    pub fn auth(&self) -> Option<RegistryAuth> {
        (!self.username.is_empty()).then(|| RegistryAuth {
            username: self.username.clone(),
            password: self.password.clone(),
            server: self.host.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// `None`: no internal registry; images stay on the runner that pulled or built them.
    pub internal: Option<RegistryAccount>,
    /// `maxSnapshotSize` (`max_snapshot_size_gb`, default [`JobSettings::DEFAULT_MAX_SIZE_GB`]).
    pub max_size_bytes: u64,
    /// `scoped_credentials_secret`: opens the organizations' registry passwords.
    pub credentials_secret: Vec<u8>,
    /// The object storage of volumes (the lifecycle sweep's volume step).
    pub volumes: cove_volume_jobs::VolumeStorage,
    /// `runner_lost_minutes` (lifecycle minutes, default [`JobSettings::DEFAULT_RUNNER_LOST_MINUTES`]):
    /// how long a runner may stay unresponsive before the lifecycle sweep gives its sandboxes
    /// up (`error`; recoverable on another runner when their last backup is in the registry).
    pub runner_lost_minutes: u32,
}

impl JobSettings {
    pub const DEFAULT_MAX_SIZE_GB: u64 = 20;
    pub const DEFAULT_RUNNER_LOST_MINUTES: u32 = 30;

    /// The push target of a first pull or build in `org`'s project.
    pub fn push_target(&self, org: &str) -> Option<cove_runner_api::PushTarget> {
        self.internal.as_ref().map(|r| cove_runner_api::PushTarget {
            registry: r.host.clone(),
            project: cove_runner_api::snapshots::project_of(org),
            auth: r.auth(),
        })
    }

    /// The internal registry's `host:port`, empty when there is none.
    pub fn registry_host(&self) -> &str {
        self.internal.as_ref().map_or("", |r| r.host.as_str())
    }
}

impl Settings for JobSettings {
    const VARIABLES: &'static [&'static str] = &[
        "internal_registry",
        "internal_registry_username",
        "internal_registry_password",
        "max_snapshot_size_gb",
        "runner_lost_minutes",
        "scoped_credentials_secret",
        "s3_endpoint",
        "s3_bucket",
        "aws_region",
        "aws_access_key_id",
        "aws_secret_access_key",
    ];

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let opt = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let internal = opt("internal_registry").map(|host| RegistryAccount {
            host: host
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned(),
            username: opt("internal_registry_username").unwrap_or_default(),
            password: opt("internal_registry_password").unwrap_or_default(),
        });
        let gb = opt("max_snapshot_size_gb")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(Self::DEFAULT_MAX_SIZE_GB);
        Self {
            internal,
            max_size_bytes: gb * 1024 * 1024 * 1024,
            credentials_secret: opt("scoped_credentials_secret")
                .unwrap_or_default()
                .into_bytes(),
            volumes: <cove_volume_jobs::VolumeStorage as Settings>::from_lookup(&get),
            runner_lost_minutes: opt("runner_lost_minutes")
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(Self::DEFAULT_RUNNER_LOST_MINUTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_registry_and_the_size_limit() {
        let vars = [
            ("internal_registry", "http://127.0.0.1:5000/"),
            ("internal_registry_username", "cove-internal"),
            ("internal_registry_password", "pw"),
            ("max_snapshot_size_gb", "2"),
            ("runner_lost_minutes", "3"),
        ];
        let s = JobSettings::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        });
        let r = s.internal.as_ref().expect("registry");
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(s.max_size_bytes, 2 << 30);
        assert_eq!(s.runner_lost_minutes, 3);
        let push = s.push_target("org-1").expect("push");
        assert_eq!(push.project, "cove-org-1");
        assert_eq!(push.auth.expect("auth").username, "cove-internal");

        let none = JobSettings::from_lookup(|_| None);
        assert!(none.internal.is_none() && none.push_target("o").is_none());
        assert_eq!(none.max_size_bytes, 20 << 30);
        assert_eq!(none.runner_lost_minutes, 30);
    }
}
