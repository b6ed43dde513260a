//! [`ContainerRuntime`] over the Docker engine API (bollard); its image operations (pull,
//! build, push) are in [`images`].

mod images;

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig, MountPoint};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, DownloadFromContainerOptions,
    ListContainersOptions, ListImagesOptions, RemoveContainerOptions, RemoveImageOptions,
    RenameContainerOptions, StopContainerOptions,
};

use super::{
    CommitOptions, ContainerInfo, ContainerRuntime, ContainerSpec, ImageInfo, ImageRemoval,
    ImageSummary, RUN_DIR_IN_CONTAINER, Result, RuntimeError,
};

pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connects with the local defaults (`DOCKER_HOST` or the unix socket) and negotiates the
    /// API version (Debian's engine 20.10 speaks 1.41).
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(|e| engine("connect", e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| engine("negotiate the API version", e))?;
        Ok(Self { docker })
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn engine(op: &'static str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message),
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => RuntimeError::Conflict(message),
        other => RuntimeError::Engine {
            op,
            message: other.to_string(),
        },
    }
}

/// A request that never got an answer from the engine (a pooled connection the engine had just
/// closed, a busy engine): worth repeating for idempotent calls.
fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperLegacyError { .. } | BollardError::IOError { .. }
    )
}

/// Runs an idempotent engine call, repeating it up to three times on transport errors.
async fn idempotent<T, F, Fut>(mut call: F) -> std::result::Result<T, BollardError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, BollardError>>,
{
    let mut attempt = 0u64;
    loop {
        match call().await {
            Err(e) if is_transport(&e) && attempt < 3 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "engine call repeated after a transport error");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

fn is_status(e: &BollardError, codes: &[u16]) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

fn run_dir(mounts: Option<&Vec<MountPoint>>) -> Option<std::path::PathBuf> {
    mounts?
        .iter()
        .find(|m| m.destination.as_deref() == Some(RUN_DIR_IN_CONTAINER))
        .and_then(|m| m.source.clone())
        .map(Into::into)
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn image(&self, image: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(image).await {
            Ok(img) => {
                let cfg = img.config.unwrap_or_default();
                Ok(Some(ImageInfo {
                    id: img.id.unwrap_or_default(),
                    user: cfg.user.filter(|u| !u.is_empty()),
                    working_dir: cfg.working_dir.filter(|w| !w.is_empty()),
                    entrypoint: cfg.entrypoint.unwrap_or_default(),
                    cmd: cfg.cmd.unwrap_or_default(),
                    labels: cfg.labels.unwrap_or_default(),
                    size_bytes: img.size.and_then(|s| u64::try_from(s).ok()),
                }))
            }
            Err(e) if is_status(&e, &[404]) => Ok(None),
            Err(e) => Err(engine("inspect an image", e)),
        }
    }

    async fn images(&self) -> Result<Vec<ImageSummary>> {
        let images = self
            .docker
            .list_images(Some(ListImagesOptions::default()))
            .await
            .map_err(|e| engine("list images", e))?;
        Ok(images
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels,
            })
            .collect())
    }

    async fn remove_image(&self, image: &str) -> Result<ImageRemoval> {
        let opts = RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        match self.docker.remove_image(image, Some(opts), None).await {
            Ok(_) => Ok(ImageRemoval::Removed),
            Err(e) if is_status(&e, &[404]) => Ok(ImageRemoval::NotFound),
            Err(e) if is_status(&e, &[409]) => Ok(ImageRemoval::InUse),
            Err(e) => Err(engine("remove an image", e)),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let host = HostConfig {
            init: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: non_empty(spec.cap_add.clone()),
            memory: spec.memory_bytes,
            // Same as memory: no swap, so the memory limit really bites.
            memory_swap: spec.memory_bytes,
            nano_cpus: spec.nano_cpus,
            pids_limit: spec.pids_limit,
            network_mode: if spec.network_none {
                Some("none".to_owned())
            } else {
                spec.network.clone()
            },
            binds: non_empty(spec.binds.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            user: Some(spec.user.clone()),
            entrypoint: non_empty(spec.entrypoint.clone()),
            cmd: non_empty(spec.cmd.clone()),
            env: non_empty(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            working_dir: spec.working_dir.clone(),
            stop_timeout: spec.stop_timeout_secs,
            network_disabled: spec.network_none.then_some(true),
            host_config: Some(host),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let resp = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| engine("create a container", e))?;
        Ok(resp.id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        match idempotent(|| self.docker.start_container(id, None)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, &[304]) => Ok(()),
            Err(e) => Err(engine("start a container", e)),
        }
    }

    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<()> {
        let opts = StopContainerOptions {
            t: Some(i32::try_from(timeout_secs).unwrap_or(i32::MAX)),
            signal: None,
        };
        match idempotent(|| self.docker.stop_container(id, Some(opts.clone()))).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, &[304]) => Ok(()),
            Err(e) => Err(engine("stop a container", e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match idempotent(|| self.docker.remove_container(id, Some(opts.clone()))).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, &[404]) => Ok(()),
            // "removal already in progress"
            Err(e) if is_status(&e, &[409]) => Ok(()),
            Err(e) => Err(engine("remove a container", e)),
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        match idempotent(|| self.docker.inspect_container(id, None)).await {
            Ok(c) => {
                let state = c.state.unwrap_or_default();
                let cfg = c.config.unwrap_or_default();
                Ok(Some(ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .name
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned(),
                    image: cfg.image.unwrap_or_default(),
                    labels: cfg.labels.unwrap_or_default(),
                    running: state.running.unwrap_or(false),
                    status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                    run_dir: run_dir(c.mounts.as_ref()),
                    exit_code: state.exit_code,
                }))
            }
            Err(e) if is_status(&e, &[404]) => Ok(None),
            Err(e) => Err(engine("inspect a container", e)),
        }
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| engine("list containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let status = c.state.map(|s| s.to_string()).unwrap_or_default();
                ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    running: status == "running",
                    status,
                    run_dir: run_dir(c.mounts.as_ref()),
                    exit_code: None,
                }
            })
            .collect())
    }

    async fn rename(&self, id: &str, name: &str) -> Result<()> {
        self.docker
            .rename_container(
                id,
                RenameContainerOptions {
                    name: name.to_owned(),
                },
            )
            .await
            .map_err(|e| engine("rename a container", e))
    }

    async fn commit(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        commit: &CommitOptions,
    ) -> Result<String> {
        let opts = CommitContainerOptions {
            container: Some(id.to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            pause: true,
            ..Default::default()
        };
        // An explicit (possibly empty) entrypoint and cmd replace the container's, which wrap
        // the image command in the toolbox daemon; labels are merged over the container's.
        let config = ContainerConfig {
            entrypoint: Some(commit.entrypoint.clone()),
            cmd: Some(commit.cmd.clone()),
            labels: Some(commit.labels.clone()),
            ..Default::default()
        };
        let resp = self
            .docker
            .commit_container(opts, config)
            .await
            .map_err(|e| engine("commit a container", e))?;
        Ok(resp.id)
    }

    fn image_engine(&self) -> Option<&dyn super::images::ImageEngine> {
        Some(self)
    }

    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        use futures::StreamExt;
        let opts = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        let mut stream = self.docker.download_from_container(id, Some(opts));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) if archive.len() + b.len() <= MAX_READ_FILE => archive.extend_from_slice(&b),
                Ok(_) => return Ok(None),
                Err(e) if is_status(&e, &[404]) => return Ok(None),
                Err(e) => return Err(engine("read a file of a container", e)),
            }
        }
        Ok(first_regular_file(&archive))
    }
}

/// Largest file [`DockerRuntime::read_file`] reads (it is for `/etc/passwd`).
const MAX_READ_FILE: usize = 4 << 20;

/// The content of the first regular file of a tar archive (Docker's archive API answers one).
fn first_regular_file(archive: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).ok()?;
            return Some(out);
        }
    }
    None
}
