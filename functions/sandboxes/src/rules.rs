//! Pure rules: what a create body may ask for, and which state changes are allowed (CONTRACT §4.2,
//! §4.5, §8). No I/O here.

use std::collections::BTreeMap;

use cove_api_types::ApiError;
use cove_api_types::sandbox::{CreateSandbox, SandboxDesiredState, SandboxState};
use cove_store::orgs::OrgQuota;

/// Largest `autoArchiveInterval` (minutes, 30 days); `0` means this maximum.
pub const MAX_AUTO_ARCHIVE_INTERVAL: i64 = 43200;

/// What a valid create body resolves to (before the snapshot is looked up).
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    pub name: Option<String>,
    pub snapshot: String,
    pub user: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub public: bool,
    pub network_block_all: bool,
    pub network_allow_list: Option<String>,
    pub network_deny_list: Option<String>,
    pub domain_allow_list: Option<String>,
    pub domain_deny_list: Option<String>,
    pub target: String,
    pub cpu: i64,
    pub gpu: i64,
    pub memory: i64,
    pub disk: i64,
    pub auto_stop_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    pub auto_pause_interval: i64,
    /// Minutes until the sandbox is destroyed whatever its state; 0: no TTL.
    pub ttl_minutes: i64,
    /// Minutes the create may wait for a runner; `None`: refused at once when there is none.
    pub queue_timeout: Option<i64>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// Checks an interval given in minutes: never negative, except `autoDeleteInterval = -1` (off).
pub fn interval(field: &str, v: i64) -> Result<i64, ApiError> {
    if v < 0 && !(field == "autoDeleteInterval" && v == -1) {
        return Err(bad(format!("{field} must not be negative")));
    }
    Ok(match field {
        "autoArchiveInterval" if v == 0 || v > MAX_AUTO_ARCHIVE_INTERVAL => {
            MAX_AUTO_ARCHIVE_INTERVAL
        }
        _ => v,
    })
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "Sandbox name must be 1-255 characters of letters, digits, '-', '_' and '.'",
        ))
    }
}

fn valid_user(user: &str) -> Result<(), ApiError> {
    let mut chars = user.chars();
    let ok = user.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(format!("Invalid user {user:?}")))
    }
}

/// What a create body may not ask for: a build, resources with a named snapshot, GPUs,
/// non-positive sizes, volumes.
fn refuse_unsupported(body: &CreateSandbox) -> Result<(), ApiError> {
    if body.build_info.is_some() {
        if body.snapshot.is_some() {
            return Err(bad("Cannot specify both a snapshot and buildInfo"));
        }
        return Err(bad(
            "Declarative builds (buildInfo) are not supported: create the sandbox from a snapshot image",
        ));
    }
    let has_resources = body.cpu.is_some()
        || body.gpu.is_some()
        || body.memory.is_some()
        || body.disk.is_some()
        || body.gpu_type.as_ref().is_some_and(|g| !g.is_empty());
    if body.snapshot.is_some() && has_resources {
        return Err(bad(
            "Cannot specify Sandbox resources when using a snapshot",
        ));
    }
    if body.gpu.unwrap_or(0) != 0 || body.gpu_type.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(bad("GPU sandboxes are not available"));
    }
    for (field, v) in [
        ("cpu", body.cpu),
        ("memory", body.memory),
        ("disk", body.disk),
    ] {
        if let Some(v) = v
            && v <= 0
        {
            return Err(bad(format!("{field} must be a positive integer")));
        }
    }
    if let Some(v) = &body.volumes {
        // The volumes themselves are checked by `service::volumes::admit`.
        crate::service::volumes::check_shape(v)?;
    }
    Ok(())
}

/// Validates a create body. Resources may only be given without a named snapshot (they then size
/// the default snapshot); declarative builds (`buildInfo`) are not supported.
/// An environment variable name the runner agent accepts (`[A-Za-z_][A-Za-z0-9_]*`): checked
/// before the row is written, so a refused create leaves nothing behind.
fn valid_env_name(k: &str) -> Result<(), ApiError> {
    let mut bytes = k.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(bad(format!("Invalid environment variable name {k:?}")))
    }
}

/// Sizes the runner agent accepts (positive cpu and memory; the maxima are the quota's).
fn valid_sizes(body: &CreateSandbox) -> Result<(), ApiError> {
    for (field, v) in [
        ("cpu", body.cpu),
        ("memory", body.memory),
        ("disk", body.disk),
    ] {
        if v.is_some_and(|v| v < 1) {
            return Err(bad(format!("{field} must be at least 1")));
        }
    }
    Ok(())
}

pub fn plan_create(body: &CreateSandbox, default_snapshot: &str) -> Result<CreatePlan, ApiError> {
    refuse_unsupported(body)?;
    if let Some(name) = &body.name {
        valid_name(name)?;
    }
    let user = body.user.clone().unwrap_or_else(|| "daytona".to_owned());
    valid_user(&user)?;
    if let Some(env) = &body.env {
        env.keys().try_for_each(|k| valid_env_name(k))?;
    }
    valid_sizes(body)?;
    let snapshot = match body.snapshot.as_deref().map(str::trim) {
        Some("") => return Err(bad("snapshot must not be empty")),
        Some(s) => s.to_owned(),
        None => default_snapshot.to_owned(),
    };
    let target = match body.target.as_deref().map(str::trim) {
        None | Some("") => "us".to_owned(),
        Some(t) => t.to_owned(),
    };
    let net = crate::service::network::validate(crate::service::network::NetworkFields {
        block_all: body.network_block_all,
        allow_list: body.network_allow_list.as_deref(),
        deny_list: body.network_deny_list.as_deref(),
        domain_allow_list: body.domain_allow_list.as_deref(),
        domain_deny_list: body.domain_deny_list.as_deref(),
    })?;
    Ok(CreatePlan {
        name: body.name.clone(),
        snapshot,
        user,
        env: body.env.clone().unwrap_or_default(),
        labels: body.labels.clone().unwrap_or_default(),
        public: body.public.unwrap_or(false),
        network_block_all: net.block_all,
        network_allow_list: net.allow_list,
        network_deny_list: net.deny_list,
        domain_allow_list: net.domain_allow_list,
        domain_deny_list: net.domain_deny_list,
        target,
        cpu: body.cpu.unwrap_or(1),
        gpu: 0,
        memory: body.memory.unwrap_or(1),
        disk: body.disk.unwrap_or(3),
        auto_stop_interval: interval("autoStopInterval", body.auto_stop_interval.unwrap_or(15))?,
        auto_archive_interval: interval(
            "autoArchiveInterval",
            body.auto_archive_interval.unwrap_or(10080),
        )?,
        // Ephemeral: deleted when it stops (`autoDeleteInterval = 0`).
        auto_delete_interval: if body.ephemeral == Some(true) {
            0
        } else {
            interval(
                "autoDeleteInterval",
                body.auto_delete_interval.unwrap_or(-1),
            )?
        },
        auto_pause_interval: interval("autoPauseInterval", body.auto_pause_interval.unwrap_or(0))?,
        ttl_minutes: ttl_minutes(body.ttl_minutes.unwrap_or(0))?,
        queue_timeout: body.queue_timeout.map(queue_timeout).transpose()?,
    })
}

/// A TTL in minutes: never negative (0 = none).
pub fn ttl_minutes(v: i64) -> Result<i64, ApiError> {
    if v < 0 {
        return Err(bad("ttlMinutes must not be negative"));
    }
    Ok(v)
}

/// A queue timeout in minutes: at least one.
fn queue_timeout(v: i64) -> Result<i64, ApiError> {
    if v < 1 {
        return Err(bad("queueTimeout must be a positive integer"));
    }
    Ok(v)
}

/// The organization's per-sandbox limits (CONTRACT §8.1).
pub fn per_sandbox_limits(q: &OrgQuota, cpu: i64, memory: i64, disk: i64) -> Result<(), ApiError> {
    if cpu > q.max_cpu_per_sandbox {
        return Err(bad(format!(
            "CPU request {cpu} exceeds maximum allowed per sandbox ({})",
            q.max_cpu_per_sandbox
        )));
    }
    if memory > q.max_memory_per_sandbox {
        return Err(bad(format!(
            "Memory request {memory}GB exceeds maximum allowed per sandbox ({}GB)",
            q.max_memory_per_sandbox
        )));
    }
    if disk > q.max_disk_per_sandbox {
        return Err(bad(format!(
            "Disk request {disk}GB exceeds maximum allowed per sandbox ({}GB)",
            q.max_disk_per_sandbox
        )));
    }
    Ok(())
}

pub fn in_progress() -> ApiError {
    ApiError::conflict("Sandbox state change in progress")
}

/// Whether a sandbox in `state` has reached `desired`.
pub fn reached(state: SandboxState, desired: SandboxDesiredState) -> bool {
    use SandboxDesiredState as D;
    match desired {
        D::Destroyed => state == SandboxState::Destroyed,
        D::Started => state == SandboxState::Started,
        D::Stopped => state == SandboxState::Stopped,
        D::Archived => state == SandboxState::Archived,
        D::Paused => state == SandboxState::Paused,
        // Not a state of its own: a resize is never "reached" by a state alone.
        D::Resized => false,
    }
}

/// What `start` should do with a sandbox in this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// Already started: answer unchanged.
    Noop,
    /// Start the stopped container on its runner.
    Resume,
    /// Re-create from the backup image on a picked runner.
    Restore,
}

/// CONTRACT §4.5, start.
pub fn check_start(
    state: SandboxState,
    desired: SandboxDesiredState,
    pending: bool,
) -> Result<StartKind, ApiError> {
    use SandboxState as S;
    if state == S::Started && desired == SandboxDesiredState::Started && !pending {
        return Ok(StartKind::Noop);
    }
    if matches!(state, S::Error | S::BuildFailed) && !pending {
        return Err(bad("Sandbox is not in valid state"));
    }
    let archiving_ok =
        matches!(state, S::Stopped | S::Archiving) && desired == SandboxDesiredState::Archived;
    if (pending || !reached(state, desired)) && !archiving_ok {
        return Err(in_progress());
    }
    match state {
        S::Stopped => Ok(StartKind::Resume),
        S::Archived => Ok(StartKind::Restore),
        _ => Err(bad("Sandbox is not in valid state")),
    }
}

/// CONTRACT §4.5, recover: only from `error` with `recoverable` (a lost runner's sandbox whose
/// last backup is in the registry).
pub fn check_recover(
    state: SandboxState,
    recoverable: bool,
    pending: bool,
) -> Result<(), ApiError> {
    if pending {
        return Err(in_progress());
    }
    if state != SandboxState::Error || !recoverable {
        return Err(bad("Sandbox is not recoverable"));
    }
    Ok(())
}

/// CONTRACT §4.5, stop.
pub fn check_stop(
    state: SandboxState,
    desired: SandboxDesiredState,
    pending: bool,
) -> Result<(), ApiError> {
    if pending || (!reached(state, desired) && state != SandboxState::Error) {
        return Err(in_progress());
    }
    if state != SandboxState::Started {
        return Err(bad("Sandbox is not in a stoppable state"));
    }
    Ok(())
}

/// CONTRACT §4.5, delete (`force` also takes over a change in progress).
pub fn check_delete(state: SandboxState, pending: bool, force: bool) -> Result<(), ApiError> {
    if pending && !force {
        return Err(in_progress());
    }
    if state == SandboxState::Destroyed {
        return Err(ApiError::not_found("Sandbox not found"));
    }
    Ok(())
}

/// CONTRACT §4.5, archive: only from stopped, error or build_failed.
pub fn check_archive(state: SandboxState, pending: bool) -> Result<(), ApiError> {
    if pending {
        return Err(in_progress());
    }
    use SandboxState as S;
    if !matches!(state, S::Stopped | S::Error | S::BuildFailed) {
        return Err(bad("Sandbox is not in valid state to be archived"));
    }
    Ok(())
}

/// Parses the JSON `labels` query filter (`{"k": "v"}`).
pub fn labels_filter(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    serde_json::from_str(raw)
        .map_err(|_| bad("Invalid labels filter: expected a JSON object of string values"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> CreateSandbox {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_defaults_and_refusals() {
        let p = plan_create(&body(serde_json::json!({})), "img:1").unwrap();
        assert_eq!(
            (
                p.snapshot.as_str(),
                p.user.as_str(),
                p.cpu,
                p.memory,
                p.disk
            ),
            ("img:1", "daytona", 1, 1, 3)
        );
        assert_eq!(
            (
                p.auto_stop_interval,
                p.auto_archive_interval,
                p.auto_delete_interval
            ),
            (15, 10080, -1)
        );
        let e = |v| plan_create(&body(v), "img:1").unwrap_err().message;
        assert_eq!(
            e(serde_json::json!({"snapshot": "x", "cpu": 2})),
            "Cannot specify Sandbox resources when using a snapshot"
        );
        assert!(
            e(serde_json::json!({"buildInfo": {"dockerfileContent": "FROM x"}}))
                .contains("buildInfo")
        );
        assert!(e(serde_json::json!({"autoStopInterval": -1})).contains("negative"));
        assert!(e(serde_json::json!({"autoDeleteInterval": -2})).contains("negative"));
        assert!(plan_create(&body(serde_json::json!({"autoDeleteInterval": -1})), "i").is_ok());
        assert!(
            e(serde_json::json!({"volumes": [{"volumeId": "v1", "mountPath": "/proc"}]}))
                .contains("system directory")
        );
        assert!(e(serde_json::json!({"name": "a b"})).contains("name"));
        assert!(e(serde_json::json!({"cpu": 0})).contains("positive"));
    }

    #[test]
    fn transitions_follow_the_contract() {
        use SandboxDesiredState as D;
        use SandboxState as S;
        assert_eq!(
            check_start(S::Started, D::Started, false).unwrap(),
            StartKind::Noop
        );
        assert_eq!(
            check_start(S::Stopped, D::Stopped, false).unwrap(),
            StartKind::Resume
        );
        assert_eq!(
            check_start(S::Archived, D::Archived, false).unwrap(),
            StartKind::Restore
        );
        assert_eq!(
            check_start(S::Starting, D::Started, true)
                .unwrap_err()
                .status,
            409
        );
        assert_eq!(
            check_start(S::Stopping, D::Stopped, true)
                .unwrap_err()
                .status,
            409
        );
        assert_eq!(
            check_start(S::Error, D::Started, false).unwrap_err().status,
            400
        );
        assert!(check_stop(S::Started, D::Started, false).is_ok());
        assert_eq!(
            check_stop(S::Stopped, D::Stopped, false)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            check_stop(S::Starting, D::Started, true)
                .unwrap_err()
                .status,
            409
        );
        assert_eq!(
            check_delete(S::Starting, true, false).unwrap_err().status,
            409
        );
        assert!(check_delete(S::Starting, true, true).is_ok());
        assert_eq!(check_archive(S::Started, false).unwrap_err().status, 400);
        assert!(check_archive(S::Stopped, false).is_ok());
        assert!(labels_filter("{\"a\":\"b\"}").is_ok());
        assert_eq!(labels_filter("{nope").unwrap_err().status, 400);
    }

    #[test]
    fn reached_matches_the_wire_names() {
        for d in SandboxDesiredState::ALL {
            for s in SandboxState::ALL {
                let same_name = d.as_str() == s.as_str();
                assert_eq!(reached(*s, *d), same_name, "{s} / {d}");
            }
        }
    }
}
