//! Step 2: what an action asks of its runner, within a time budget, and what came of it.

use std::time::{Duration, Instant};

use cove_edge::runner_client::{ClientError, PutOutcome, RunnerClient};
use cove_runner_api::{SandboxStatus, StateReport};
use cove_store::Store;
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{SandboxRecord, Transition};

use crate::action::{Push, describe};
use crate::spec::spec_of;
use cove_runner_api::{BackupRequest, PushTarget, RegistryAuth};

/// The internal registry as runners use it: `host[:port]` and the runners' account.
#[derive(Debug, Clone, Copy)]
pub struct InternalRegistry<'a> {
    pub host: &'a str,
    pub auth: Option<&'a RegistryAuth>,
}

/// What a run may give the runner besides the spec: the credentials of the sandbox's image, and
/// where backups go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Sent with a spec (`SandboxSpec.image_auth`): a runner without the image pulls it.
    pub image_auth: Option<RegistryAuth>,
    /// Sent with a backup (`BackupRequest.push`): the backup is pushed there, so that any
    /// runner can restore it. `None`: it stays on its runner.
    pub backup_push: Option<PushTarget>,
}

impl Access {
    /// For `rec` with the internal registry `registry` (none: nothing to give): its account
    /// when the sandbox's image (a restored backup's, else its snapshot's) lives there, and its
    /// organization's project there for backups.
    pub fn of(registry: Option<InternalRegistry<'_>>, rec: &SandboxRecord) -> Self {
        let Some(r) = registry.filter(|r| !r.host.is_empty()) else {
            return Self::default();
        };
        let image = rec.container_image.as_deref().unwrap_or(&rec.snapshot);
        let internal = image
            .strip_prefix(r.host)
            .is_some_and(|rest| rest.starts_with('/'));
        Self {
            image_auth: r.auth.filter(|_| internal).cloned(),
            backup_push: Some(PushTarget {
                registry: r.host.to_owned(),
                project: cove_runner_api::snapshots::project_of(rec.org_id.as_str()),
                auth: r.auth.cloned(),
            }),
        }
    }
}

/// How long the runner may take for one run of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `?wait=` of a `PUT`: how long the agent waits for the desired state before a 202.
    pub wait_secs: u32,
    /// Every runner call of the run together (connect to last byte).
    pub total: Duration,
}

/// A user's request: well below the host's 60 s deadline.
pub const REQUEST_BOUNDS: Bounds = Bounds {
    wait_secs: 15,
    total: Duration::from_secs(20),
};

/// One push of the lifecycle sweep (which has many to do within its own request).
pub const SWEEP_BOUNDS: Bounds = Bounds {
    wait_secs: 5,
    total: Duration::from_secs(10),
};

/// Below this much time left, no call is started (the outcome is left to the sweep).
const MIN_CALL: Duration = Duration::from_millis(500);

/// What a runner says a sandbox is (a status of an answer, or a state report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub state: cove_runner_api::SandboxState,
    pub error_reason: Option<String>,
    pub daemon_version: Option<String>,
    /// The image its container runs, when told.
    pub image: Option<String>,
}

impl From<&SandboxStatus> for Observed {
    fn from(s: &SandboxStatus) -> Self {
        Self {
            state: s.state,
            error_reason: s.error_reason.clone(),
            daemon_version: s.daemon_version.clone(),
            image: s.snapshot.clone(),
        }
    }
}

impl From<&StateReport> for Observed {
    fn from(r: &StateReport) -> Self {
        Self {
            state: r.state,
            error_reason: r.error_reason.clone(),
            daemon_version: None,
            image: None,
        }
    }
}

/// What came of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A `PUT` reached its desired state.
    Reached(Observed),
    /// A backup exists (an archive: and the container is gone).
    BackedUp { image: String },
    /// The container is gone (or there never was one).
    Removed,
    /// Not known yet: the agent answered 202, no answer came, or no time was left. The runner's
    /// report or the sweep settles it.
    InFlight,
    /// The runner refused (4xx).
    Refused { status: u16, message: String },
    /// It failed: the runner could not be reached or gave up (5xx), or the sandbox has no
    /// usable runner.
    Failed(String),
}

/// A client of `runner` whose calls end within `timeout`.
pub fn client(runner: &RunnerRecord, timeout: Duration) -> Result<RunnerClient, String> {
    runner
        .api_url
        .as_deref()
        .map(|u| RunnerClient::new(u, &runner.api_key).with_timeout(timeout))
        .ok_or_else(|| format!("Runner {} has no API URL", runner.name))
}

/// The time left of a run.
struct Budget {
    until: Instant,
}

impl Budget {
    fn left(&self) -> Option<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        (left >= MIN_CALL).then_some(left)
    }
}

/// The outcome of a failed call.
fn failed(runner: &RunnerRecord, e: &ClientError) -> Outcome {
    tracing::warn!(runner = %runner.id, error = %e, "runner call failed");
    match e {
        ClientError::Unreachable { .. } => {
            Outcome::Failed(format!("Runner {} is unreachable", runner.name))
        }
        ClientError::NoAnswer { .. } => Outcome::InFlight,
        ClientError::Status {
            status, message, ..
        } if (400..500).contains(status) => Outcome::Refused {
            status: *status,
            message: message.clone(),
        },
        ClientError::Status { message, .. } => Outcome::Failed(message.clone()),
    }
}

/// The sandbox's runner (`None`: it has none; `Err`: it names one that is gone).
async fn runner_of(store: &Store, rec: &SandboxRecord) -> Result<Option<RunnerRecord>, Outcome> {
    let Some(id) = &rec.runner_id else {
        return Ok(None);
    };
    match store.runners().get(id).await {
        Ok(Some(r)) => Ok(Some(r)),
        Ok(None) => Err(Outcome::Failed(
            "The sandbox's runner no longer exists".into(),
        )),
        Err(e) => {
            tracing::warn!(sandbox = %rec.id, error = %e, "reading the runner failed");
            Err(Outcome::InFlight)
        }
    }
}

/// Runs the runner's part of `t` on `rec` within `bounds`.
pub(crate) async fn push(
    store: &Store,
    rec: &SandboxRecord,
    t: &Transition,
    bounds: &Bounds,
    access: &Access,
) -> Outcome {
    let budget = Budget {
        until: Instant::now() + bounds.total,
    };
    let push = describe(t.action).push;
    let runner = match runner_of(store, rec).await {
        Ok(Some(r)) => r,
        Ok(None) if push == Push::Destroy => return Outcome::Removed,
        Ok(None) => return Outcome::Failed("Sandbox is not assigned to a runner".into()),
        Err(Outcome::Failed(_)) if push == Push::Destroy => return Outcome::Removed,
        Err(out) => return out,
    };
    let call = Call {
        runner: &runner,
        id: rec.id.as_str(),
        budget: &budget,
        backup: BackupRequest {
            key: format!("{}-{}-{}", t.action, t.generation, t.started_at),
            push: access.backup_push.clone(),
            ..BackupRequest::default()
        },
    };
    match push {
        Push::Spec(desired) => {
            let mut spec = spec_of(rec, t, desired);
            spec.image_auth = access.image_auth.clone();
            call.put(&spec, bounds.wait_secs).await
        }
        Push::Backup => call.backup().await,
        Push::Archive => match call.backup().await {
            Outcome::BackedUp { image } => match call.destroy().await {
                Outcome::Removed => Outcome::BackedUp { image },
                other => other,
            },
            other => other,
        },
        Push::Destroy => call.destroy().await,
    }
}

/// Calls to one runner about one sandbox.
struct Call<'a> {
    runner: &'a RunnerRecord,
    id: &'a str,
    budget: &'a Budget,
    /// The body of a backup (the same for every push of the transition: the agent joins it).
    backup: BackupRequest,
}

impl Call<'_> {
    fn client(&self) -> Result<RunnerClient, Outcome> {
        let left = self.budget.left().ok_or(Outcome::InFlight)?;
        client(self.runner, left).map_err(Outcome::Failed)
    }

    async fn put(&self, spec: &cove_runner_api::SandboxSpec, wait: u32) -> Outcome {
        let c = match self.client() {
            Ok(c) => c,
            Err(o) => return o,
        };
        match c.apply_sandbox(self.id, spec, Some(wait)).await {
            Ok(PutOutcome::Reached(st)) => Outcome::Reached(Observed::from(&st)),
            Ok(PutOutcome::Pending(_)) => Outcome::InFlight,
            Err(e) => failed(self.runner, &e),
        }
    }

    async fn backup(&self) -> Outcome {
        let c = match self.client() {
            Ok(c) => c,
            Err(o) => return o,
        };
        match c.backup_sandbox(self.id, &self.backup).await {
            Ok(b) => Outcome::BackedUp { image: b.image },
            Err(e) => failed(self.runner, &e),
        }
    }

    async fn destroy(&self) -> Outcome {
        let c = match self.client() {
            Ok(c) => c,
            Err(o) => return o,
        };
        match c.destroy_sandbox(self.id).await {
            Ok(_) => Outcome::Removed,
            Err(e) => failed(self.runner, &e),
        }
    }
}
