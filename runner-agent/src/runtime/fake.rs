//! The simulated container engine (`cove-runner --runtime fake`, and the agent's unit tests).
//!
//! It answers as Docker would, without Docker:
//! - **images**: the configured snapshot/warm-pool images plus the committed ones; anything else
//!   is "not found". An image in use by a container cannot be removed (Docker's 409).
//! - **containers** have Docker's states (`created`, `running`, `exited`), names that conflict,
//!   labels merged over their image's, and a root directory of their own (a copy of their
//!   image's), so a commit followed by a create from it restores the files.
//! - a started container runs a **real toolbox daemon in-process** (`cove_toolbox::server`) on
//!   the container's socket (`<run dir>/toolbox.sock`), jailed to the container's root
//!   directory: files, processes and sessions really work. Commands run on the host as the
//!   agent's user (with the jail's work dir as their cwd): this mode is for tests, never for
//!   untrusted code.
//! - **faults** ([`Faults`]): a container can crash, and the next engine calls of a kind can take
//!   N seconds or hang.
//!
//! - **image operations** (snapshot jobs, [`images`]): pulls and builds take a short while.
//!
//! Nothing here sleeps in the normal path of containers.

mod images;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use cove_runner_api::fake::{FakeDelay, FakeOp};

use super::{
    CommitOptions, ContainerInfo, ContainerRuntime, ContainerSpec, Faults, ImageInfo, ImageRemoval,
    ImageSummary, RUN_DIR_IN_CONTAINER, Result, RuntimeError,
};

/// The simulated engine; state lives in memory, root directories under `dir`.
pub struct FakeRuntime {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By reference (`repo:tag`).
    images: HashMap<String, FakeImage>,
    containers: HashMap<String, FakeContainer>,
    next: u64,
    /// Every call, for assertions (`create:<name>`, `start:<id>`, ...).
    calls: Vec<String>,
    /// Pending delays per kind (`None`: hang).
    delays: HashMap<FakeOp, VecDeque<Option<Duration>>>,
}

#[derive(Clone)]
struct FakeImage {
    info: ImageInfo,
    /// Committed images carry the files of their container.
    rootfs: Option<PathBuf>,
}

struct FakeContainer {
    spec: ContainerSpec,
    info: ContainerInfo,
    image_id: String,
    rootfs: PathBuf,
    daemon: Option<Daemon>,
}

/// An in-process toolbox daemon serving one container's socket.
struct Daemon {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Daemon {
    fn shut(self) {
        let _ = self.stop.send(());
        self.task.abort();
    }
}

fn default_image(reference: &str) -> ImageInfo {
    use sha2::Digest;
    ImageInfo {
        id: format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(reference.as_bytes()))
        ),
        user: Some("daytona".into()),
        working_dir: Some("/home/daytona".into()),
        entrypoint: vec![],
        cmd: vec!["sleep".into(), "infinity".into()],
        labels: HashMap::new(),
        size_bytes: Some(1 << 20),
    }
}

impl FakeRuntime {
    /// An engine holding `images`, keeping container roots under `dir`.
    pub fn new(dir: PathBuf, images: &[String]) -> Self {
        let rt = Self {
            dir,
            inner: Mutex::default(),
        };
        for image in images {
            rt.add_image(image);
        }
        rt
    }

    pub fn add_image(&self, reference: &str) {
        let image = FakeImage {
            info: default_image(reference),
            rootfs: None,
        };
        self.lock().images.insert(reference.to_owned(), image);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The spec a container was created with.
    pub fn spec_of(&self, id: &str) -> Option<ContainerSpec> {
        self.lock().containers.get(id).map(|c| c.spec.clone())
    }

    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    /// Waits out a pending delay of `op`, if any (a hang never returns: the caller's deadline
    /// ends it).
    async fn fault(&self, op: FakeOp) {
        let delay = self
            .lock()
            .delays
            .get_mut(&op)
            .and_then(VecDeque::pop_front);
        match delay {
            None => {}
            Some(Some(d)) => tokio::time::sleep(d).await,
            Some(None) => std::future::pending::<()>().await,
        }
    }

    /// Stops a container's daemon and marks it exited.
    fn halt(&self, id: &str, exit_code: i64) -> Result<()> {
        let mut g = self.lock();
        let c = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if let Some(d) = c.daemon.take() {
            d.shut();
        }
        if let Some(sock) = socket_of(&c.info) {
            let _ = std::fs::remove_file(sock);
        }
        c.info.running = false;
        c.info.status = "exited".into();
        c.info.exit_code = Some(exit_code);
        Ok(())
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        let mut g = self.lock();
        for c in g.containers.values_mut() {
            if let Some(d) = c.daemon.take() {
                d.shut();
            }
        }
    }
}

fn find<'a>(g: &'a mut Inner, id: &str) -> Option<&'a mut FakeContainer> {
    let key = g
        .containers
        .iter()
        .find(|(k, c)| *k == id || c.info.name == id)
        .map(|(k, _)| k.clone())?;
    g.containers.get_mut(&key)
}

fn find_image<'a>(g: &'a Inner, reference: &str) -> Option<(&'a String, &'a FakeImage)> {
    g.images
        .iter()
        .find(|(r, i)| *r == reference || i.info.id == reference)
}

fn run_dir_of(spec: &ContainerSpec) -> Option<PathBuf> {
    spec.binds.iter().find_map(|b| {
        let mut parts = b.split(':');
        let src = parts.next()?;
        (parts.next()? == RUN_DIR_IN_CONTAINER).then(|| src.into())
    })
}

fn socket_of(info: &ContainerInfo) -> Option<PathBuf> {
    info.run_dir
        .as_ref()
        .map(|d| d.join(crate::toolbox::SOCKET_NAME))
}

fn home_of(spec: &ContainerSpec) -> String {
    spec.env
        .iter()
        .find_map(|e| e.strip_prefix("HOME="))
        .unwrap_or("/home/daytona")
        .to_owned()
}

/// Copies a directory tree (files, directories, symlinks as links).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&from, &to)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ty.is_file() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn io_err(op: &'static str) -> impl Fn(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::Engine {
        op,
        message: e.to_string(),
    }
}

/// Starts the in-process daemon of a container: its socket in the run dir, jailed to `rootfs`.
fn spawn_daemon(c: &FakeContainer) -> std::io::Result<Daemon> {
    let socket = socket_of(&c.info)
        .ok_or_else(|| std::io::Error::other("the container has no /run/cove mount"))?;
    let work = c
        .spec
        .working_dir
        .clone()
        .unwrap_or_else(|| home_of(&c.spec));
    let home = home_of(&c.spec);
    for d in [&work, &home, &"/tmp".to_owned()] {
        std::fs::create_dir_all(c.rootfs.join(d.trim_start_matches('/')))?;
    }
    let paths =
        cove_toolbox::paths::Paths::new(Some(&c.rootfs), Path::new(&work), Path::new(&home))?;
    let state_dir = c.rootfs.with_file_name("toolbox-state");
    std::fs::create_dir_all(&state_dir)?;
    let state = cove_toolbox::server::AppState::new(paths, state_dir);
    let router = cove_toolbox::server::router(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = cove_toolbox::server::serve(router, Some(&socket), None, shutdown).await {
            tracing::warn!(socket = %socket.display(), error = %e, "in-process toolbox daemon failed");
        }
    });
    Ok(Daemon { stop, task })
}

#[async_trait::async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn image(&self, image: &str) -> Result<Option<ImageInfo>> {
        Ok(find_image(&self.lock(), image).map(|(_, i)| i.info.clone()))
    }

    async fn images(&self) -> Result<Vec<ImageSummary>> {
        let g = self.lock();
        let mut by_id: HashMap<String, ImageSummary> = HashMap::new();
        for (reference, img) in &g.images {
            let e = by_id
                .entry(img.info.id.clone())
                .or_insert_with(|| ImageSummary {
                    id: img.info.id.clone(),
                    tags: vec![],
                    labels: img.info.labels.clone(),
                });
            e.tags.push(reference.clone());
        }
        let mut v: Vec<ImageSummary> = by_id.into_values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn remove_image(&self, image: &str) -> Result<ImageRemoval> {
        let mut g = self.lock();
        g.calls.push(format!("rmi:{image}"));
        let Some((reference, img)) = find_image(&g, image).map(|(r, i)| (r.clone(), i.clone()))
        else {
            return Ok(ImageRemoval::NotFound);
        };
        if g.containers.values().any(|c| c.image_id == img.info.id) {
            return Ok(ImageRemoval::InUse);
        }
        g.images.remove(&reference);
        if let Some(root) = img.rootfs.as_ref().and_then(|r| r.parent()) {
            let _ = std::fs::remove_dir_all(root);
        }
        Ok(ImageRemoval::Removed)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        self.fault(FakeOp::Put).await;
        let (id, image, rootfs) = {
            let mut g = self.lock();
            let image = find_image(&g, &spec.image)
                .map(|(_, i)| i.clone())
                .ok_or_else(|| RuntimeError::NotFound(spec.image.clone()))?;
            if g.containers.values().any(|c| c.info.name == spec.name) {
                return Err(RuntimeError::Conflict(spec.name.clone()));
            }
            g.next += 1;
            let id = format!("f{:063x}", g.next);
            g.calls.push(format!("create:{}", spec.name));
            let rootfs = self.dir.join("containers").join(&id).join("rootfs");
            (id, image, rootfs)
        };
        match &image.rootfs {
            Some(src) => copy_tree(src, &rootfs),
            None => std::fs::create_dir_all(&rootfs),
        }
        .map_err(io_err("create a container"))?;
        let mut labels = image.info.labels.clone();
        labels.extend(spec.labels.clone());
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            labels,
            running: false,
            status: "created".into(),
            run_dir: run_dir_of(spec),
            exit_code: None,
        };
        let c = FakeContainer {
            spec: spec.clone(),
            info,
            image_id: image.info.id.clone(),
            rootfs,
            daemon: None,
        };
        self.lock().containers.insert(id.clone(), c);
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.fault(FakeOp::Put).await;
        let mut g = self.lock();
        g.calls.push(format!("start:{id}"));
        let c = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.info.running {
            return Ok(());
        }
        c.daemon = Some(spawn_daemon(c).map_err(io_err("start a container"))?);
        c.info.running = true;
        c.info.status = "running".into();
        c.info.exit_code = None;
        Ok(())
    }

    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<()> {
        self.fault(FakeOp::Put).await;
        self.lock().calls.push(format!("stop:{id}:{timeout_secs}"));
        self.halt(id, 0)
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.fault(FakeOp::Delete).await;
        let mut g = self.lock();
        g.calls.push(format!("remove:{id}"));
        let key = find(&mut g, id).map(|c| c.info.id.clone());
        if let Some(mut c) = key.and_then(|k| g.containers.remove(&k)) {
            if let Some(d) = c.daemon.take() {
                d.shut();
            }
            if let Some(dir) = c.rootfs.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let mut g = self.lock();
        Ok(find(&mut g, id).map(|c| c.info.clone()))
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|c| c.info.labels.get(label).map(String::as_str) == Some(value))
            .map(|c| c.info.clone())
            .collect())
    }

    async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let mut g = self.lock();
        g.calls.push(format!("rename:{id}:{name}"));
        if g.containers
            .values()
            .any(|c| c.info.name == name && c.info.id != id)
        {
            return Err(RuntimeError::Conflict(name.to_owned()));
        }
        let c = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        c.info.name = name.to_owned();
        Ok(())
    }

    async fn commit(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        opts: &CommitOptions,
    ) -> Result<String> {
        self.fault(FakeOp::Backup).await;
        let (src, spec, mut labels, n) = {
            let mut g = self.lock();
            g.next += 1;
            let n = g.next;
            let c = find(&mut g, id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
            (c.rootfs.clone(), c.spec.clone(), c.info.labels.clone(), n)
        };
        let image_id = format!("sha256:{:064x}", n);
        let rootfs = self.dir.join("images").join(format!("{n}")).join("rootfs");
        copy_tree(&src, &rootfs).map_err(io_err("commit a container"))?;
        labels.extend(opts.labels.clone());
        let info = ImageInfo {
            id: image_id.clone(),
            user: Some(spec.user.clone()).filter(|u| !u.is_empty()),
            working_dir: spec.working_dir.clone(),
            entrypoint: opts.entrypoint.clone(),
            cmd: opts.cmd.clone(),
            labels,
            size_bytes: Some(1 << 20),
        };
        let image = FakeImage {
            info,
            rootfs: Some(rootfs),
        };
        let mut g = self.lock();
        g.calls.push(format!("commit:{id}:{repo}:{tag}"));
        g.images.insert(format!("{repo}:{tag}"), image);
        Ok(image_id)
    }

    fn faults(&self) -> Option<&dyn Faults> {
        Some(self)
    }

    fn image_engine(&self) -> Option<&dyn super::images::ImageEngine> {
        Some(self)
    }

    fn env_in_requests(&self) -> bool {
        true
    }
}

#[async_trait::async_trait]
impl Faults for FakeRuntime {
    async fn crash(&self, id: &str) -> Result<()> {
        self.lock().calls.push(format!("crash:{id}"));
        self.halt(id, 137)
    }

    fn delay(&self, delay: &FakeDelay) {
        let d = delay
            .seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let mut g = self.lock();
        let q = g.delays.entry(delay.op).or_default();
        for _ in 0..delay.times.unwrap_or(1).max(1) {
            q.push_back(d);
        }
    }
}
