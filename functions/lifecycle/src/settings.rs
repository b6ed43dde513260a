//! The component's settings: the sweep's jobs ([`JobSettings`]) and the token of the public sweep
//! route.

use cove_edge::config::Settings;
use cove_snapshot_jobs::JobSettings;

/// The variable holding the bearer token of [`crate::SWEEP_ROUTE`].
pub const SWEEP_TOKEN_VARIABLE: &str = "lifecycle_sweep_token";

const JOB_VARIABLES: &[&str] = <JobSettings as Settings>::VARIABLES;
const VARIABLE_COUNT: usize = JOB_VARIABLES.len() + 1;
const ALL_VARIABLES: [&str; VARIABLE_COUNT] = {
    let mut all = [SWEEP_TOKEN_VARIABLE; VARIABLE_COUNT];
    let mut i = 0;
    while i < JOB_VARIABLES.len() {
        all[i] = JOB_VARIABLES[i];
        i += 1;
    }
    all
};

/// What the `lifecycle` component reads.
#[derive(Clone)]
pub struct LifecycleSettings {
    pub jobs: JobSettings,
    /// `lifecycle_sweep_token`: the bearer token an external scheduler (EventBridge Scheduler,
    /// a Kubernetes CronJob) calls `POST /api/lifecycle/sweep` with; `None` (unset or empty):
    /// that route is refused and only the private route sweeps.
    pub sweep_token: Option<String>,
}

impl std::fmt::Debug for LifecycleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleSettings")
            .field("sweep_token", &self.sweep_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl Settings for LifecycleSettings {
    const VARIABLES: &'static [&'static str] = &ALL_VARIABLES;

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            sweep_token: get(SWEEP_TOKEN_VARIABLE)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            jobs: <JobSettings as Settings>::from_lookup(get),
        }
    }
}

/// Constant-time equality of two byte strings.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
