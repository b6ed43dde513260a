//! One snapshot job, run in the background under its deadline: pull or build, then (with a
//! push target) tag and push; the outcome is the job's final status.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cove_runner_api::{
    PushTarget, RegistryAuth, SnapshotJobState, SnapshotSource, SnapshotSpec, SnapshotStatus,
    labels,
};
use sha2::Digest;

use super::context::{self, ContextError};
use super::{Job, Persisted, Shared, shape};
use crate::runtime::images::{BuildRequest, ImageEngine, ImageError};

type Step<T> = std::result::Result<T, ImageError>;

pub(super) fn kind(spec: &SnapshotSpec) -> &'static str {
    match spec.source {
        SnapshotSource::Pull { .. } => "pull",
        SnapshotSource::Build { .. } => "build",
    }
}

/// `15 min`, `90 s`.
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Runs the job to its end and publishes the outcome.
pub(super) async fn run(shared: Arc<Shared>, job: Arc<Job>) {
    let started = Instant::now();
    let deadline = match job.spec.source {
        SnapshotSource::Pull { .. } => shared.settings.pull_timeout,
        SnapshotSource::Build { .. } => shared.settings.build_timeout,
    };
    let outcome = tokio::time::timeout(deadline, steps(&shared, &job)).await;
    let status = match outcome {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => failed(&job, &e),
        Err(_) => {
            let mut st = SnapshotStatus::new(&job.key, SnapshotJobState::Error);
            st.error_reason = Some(format!(
                "{} timed out after {}",
                kind(&job.spec),
                human(deadline)
            ));
            st
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match &status.error_reason {
        None => {
            job.log
                .append(&format!("ready: {}", status.r#ref.as_deref().unwrap_or("")));
            tracing::info!(snapshot = %job.key, r#ref = ?status.r#ref, secs, "snapshot ready");
            persist(&shared.dir, &job.key, &job.spec, &status);
        }
        Some(reason) => {
            job.log.append(&format!("error: {reason}"));
            tracing::warn!(snapshot = %job.key, reason = %crate::error::printable(reason), build_failed = status.build_failed, secs, "snapshot job failed");
        }
    }
    job.status.send_replace(status);
    job.log.close();
}

fn failed(job: &Job, e: &ImageError) -> SnapshotStatus {
    let mut st = SnapshotStatus::new(&job.key, SnapshotJobState::Error);
    st.build_failed = matches!(e, ImageError::Build(_));
    st.error_reason = Some(e.to_string());
    st
}

fn set_state(job: &Job, state: SnapshotJobState) {
    job.status.send_modify(|s| s.state = state);
}

fn engine(shared: &Shared) -> Step<&dyn ImageEngine> {
    shared
        .runtime
        .image_engine()
        .ok_or_else(|| ImageError::Failed("this runtime cannot pull or build images".into()))
}

fn engine_err(e: crate::runtime::RuntimeError) -> ImageError {
    ImageError::Failed(e.to_string())
}

async fn steps(shared: &Shared, job: &Job) -> Step<SnapshotStatus> {
    match &job.spec.source {
        SnapshotSource::Pull { image, auth } => pull(shared, job, image, auth.as_ref()).await,
        SnapshotSource::Build {
            dockerfile,
            context_hashes,
            r#ref,
        } => build(shared, job, dockerfile, context_hashes, r#ref).await,
    }
}

async fn pull(
    shared: &Shared,
    job: &Job,
    image: &str,
    auth: Option<&RegistryAuth>,
) -> Step<SnapshotStatus> {
    let present = shared.runtime.image(image).await.map_err(engine_err)?;
    let push = job.spec.push.as_ref();
    // An image already on the engine is reused only when it is this organization's own
    // internal ref (a propagation): any other image may have been pulled with another
    // organization's credentials, so it is pulled again with this one's (the registry decides).
    let own = cove_runner_api::snapshots::internal_org_of(image) == Some(job.spec.org_id.as_str());
    if push.is_none() && own && present.is_some() {
        job.log.append(&format!("{image} is present on the runner"));
        return ready(shared, job, image).await;
    }
    set_state(job, SnapshotJobState::Pulling);
    job.log.append(&format!("pulling {image}"));
    engine(shared)?.pull(image, auth, &*job.log).await?;
    let Some(target) = push else {
        return ready(shared, job, image).await;
    };
    let info = shared
        .runtime
        .image(image)
        .await
        .map_err(engine_err)?
        .ok_or_else(|| {
            ImageError::Failed(format!("{image} is not on the engine after its pull"))
        })?;
    let digest = hex::encode(sha2::Sha256::digest(info.id.as_bytes()));
    let dest = format!(
        "{}/{}/daytona-{digest}:{}",
        target.registry,
        target.project,
        cove_runner_api::snapshots::INTERNAL_TAG
    );
    push_to(shared, job, image, &dest, target).await?;
    ready(shared, job, &dest).await
}

/// Where a build's ref goes in the push target's project.
fn push_dest(r#ref: &str, target: &PushTarget) -> String {
    let prefix = format!("{}/{}/", target.registry, target.project);
    if r#ref.starts_with(&prefix) {
        return r#ref.to_owned();
    }
    let name = r#ref.rsplit('/').next().unwrap_or(r#ref);
    format!("{prefix}{name}")
}

async fn build(
    shared: &Shared,
    job: &Job,
    dockerfile: &str,
    hashes: &[String],
    r#ref: &str,
) -> Step<SnapshotStatus> {
    if shared
        .runtime
        .image(r#ref)
        .await
        .map_err(engine_err)?
        .is_some()
    {
        job.log
            .append(&format!("{ref} is present on the runner: nothing to build", ref = r#ref));
    } else {
        set_state(job, SnapshotJobState::Building);
        let work = WorkDir::create(&shared.dir, &job.key).map_err(context_err)?;
        let context = assemble(shared, job, dockerfile, hashes, &work).await?;
        let req = BuildRequest {
            context,
            tag: r#ref.to_owned(),
            labels: HashMap::from([
                (labels::MANAGED.to_owned(), "true".to_owned()),
                (labels::ORG_ID.to_owned(), job.spec.org_id.clone()),
                (labels::SNAPSHOT.to_owned(), r#ref.to_owned()),
            ]),
            registries: job
                .spec
                .push
                .iter()
                .filter_map(|p| p.auth.clone())
                .collect(),
        };
        engine(shared)?.build(&req, &*job.log).await?;
    }
    match &job.spec.push {
        Some(target) => {
            let dest = push_dest(r#ref, target);
            push_to(shared, job, r#ref, &dest, target).await?;
            ready(shared, job, &dest).await
        }
        None => ready(shared, job, r#ref).await,
    }
}

fn context_err(e: impl Into<ContextError>) -> ImageError {
    ImageError::Failed(e.into().to_string())
}

/// The build context: every context tar fetched, merged with the Dockerfile.
async fn assemble(
    shared: &Shared,
    job: &Job,
    dockerfile: &str,
    hashes: &[String],
    work: &WorkDir,
) -> Step<PathBuf> {
    let mut tars = Vec::new();
    // The simulated runner without object storage builds without the contexts (suites that
    // run no S3); with S3 configured it fetches them like Docker.
    let simulated = shared.runtime.faults().is_some() && !shared.contexts.configured();
    for (i, hash) in hashes.iter().enumerate() {
        if simulated {
            job.log.append(&format!(
                "simulated runner without S3: build context {hash} not fetched"
            ));
            continue;
        }
        let dest = work.0.join(format!("ctx-{i}.tar"));
        job.log.append(&format!("fetching build context {hash}"));
        shared
            .contexts
            .fetch(&job.spec.org_id, hash, &dest)
            .await
            .map_err(context_err)?;
        tars.push(dest);
    }
    let out = work.0.join("context.tar");
    let (df, o) = (dockerfile.to_owned(), out.clone());
    tokio::task::spawn_blocking(move || context::merge(&df, &tars, &o))
        .await
        .map_err(|e| ImageError::Failed(format!("assembling the build context: {e}")))?
        .map_err(context_err)?;
    Ok(out)
}

async fn push_to(
    shared: &Shared,
    job: &Job,
    image: &str,
    dest: &str,
    target: &PushTarget,
) -> Step<()> {
    set_state(job, SnapshotJobState::Pushing);
    let engine = engine(shared)?;
    if image != dest {
        engine.tag(image, dest).await?;
    }
    job.log.append(&format!("pushing {dest}"));
    engine.push(dest, target.auth.as_ref(), &*job.log).await
}

/// The `ready` status of `r#ref` (size, entrypoint and cmd from the engine).
async fn ready(shared: &Shared, job: &Job, r#ref: &str) -> Step<SnapshotStatus> {
    let info = shared
        .runtime
        .image(r#ref)
        .await
        .map_err(engine_err)?
        .ok_or_else(|| ImageError::Failed(format!("{ref} is not on the engine", ref = r#ref)))?;
    let mut st = SnapshotStatus::new(&job.key, SnapshotJobState::Ready);
    st.r#ref = Some(r#ref.to_owned());
    st.size_bytes = info.size_bytes;
    st.entrypoint = (!info.entrypoint.is_empty()).then_some(info.entrypoint);
    st.cmd = (!info.cmd.is_empty()).then_some(info.cmd);
    Ok(st)
}

/// A job's scratch directory, removed when dropped (also when the job is cancelled).
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(dir: &Path, key: &str) -> std::io::Result<Self> {
        let path = dir
            .join("work")
            .join(format!("{key}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn state_file(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// Keeps a `ready` job across restarts (credentials stripped).
fn persist(dir: &Path, key: &str, spec: &SnapshotSpec, status: &SnapshotStatus) {
    let body = Persisted {
        spec: shape(spec),
        status: status.clone(),
    };
    let write = std::fs::create_dir_all(dir).and_then(|()| {
        let tmp = dir.join(format!(".{key}.json.tmp"));
        let bytes = serde_json::to_vec(&body).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, state_file(dir, key)))
    });
    if let Err(e) = write {
        tracing::warn!(snapshot = %key, error = %e, "cannot keep the snapshot state");
    }
}

pub(super) fn unpersist(dir: &Path, key: &str) {
    let _ = std::fs::remove_file(state_file(dir, key));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_go_to_the_push_targets_project_and_durations_read_well() {
        let t = PushTarget {
            registry: "r:5".into(),
            project: "cove-o".into(),
            auth: None,
        };
        assert_eq!(
            push_dest("r:5/cove-o/daytona-a:daytona", &t),
            "r:5/cove-o/daytona-a:daytona"
        );
        assert_eq!(
            push_dest("cove-o/daytona-a:daytona", &t),
            "r:5/cove-o/daytona-a:daytona"
        );
        assert_eq!(human(Duration::from_secs(900)), "15 min");
        assert_eq!(human(Duration::from_millis(300)), "0.3 s");
    }
}
