//! Desired state → containers. Holds the agent's view of its sandboxes and applies
//! [`SandboxSpec`]s idempotently (see `cove_runner_api` for the contract).
//!
//! The view is rebuilt on start from Docker (containers labelled `cove.runner=<runner id>`) plus
//! the state files `<data-dir>/state/<id>.json`, so sandboxes survive an agent restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cove_runner_api::{
    DesiredState, NetworkPolicy, RunnerMetrics, SandboxSpec, SandboxState, SandboxStatus, labels,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::RwLock;

use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::pool::{Pool, PoolEntry};
use crate::runtime::{ContainerRuntime, ContainerSpec, ImageInfo, RUN_DIR_IN_CONTAINER};
use crate::toolbox::{SOCKET_NAME, Target};

/// Label naming the agent that owns a container.
pub const RUNNER_LABEL: &str = "cove.runner";
/// Where the toolbox binary is mounted (read-only) in every container.
pub const TOOLBOX_IN_CONTAINER: &str = "/usr/local/bin/cove-toolbox";
/// The env file named by `BASH_ENV` (see `pool.rs`).
pub const ENV_FILE: &str = "env.sh";

const DEFAULT_CPU: f64 = 1.0;
const DEFAULT_MEMORY_MIB: u64 = 1024;
const DEFAULT_DISK_GIB: u64 = 3;
const DEFAULT_PIDS: i64 = 4096;
const DEFAULT_STOP_SECS: u32 = 10;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Capabilities kept for sandboxes that run as root (none are kept for other users: a non-root
/// process has no effective capabilities, and `no-new-privileges` stops setuid binaries from
/// gaining any):
/// - `CHOWN`: `files/permissions` with owner/group, and tools that chown their files;
/// - `DAC_OVERRIDE`: root reads/writes files of other users (file API, git, package managers);
/// - `FOWNER`: chmod/utime on files root does not own (`files/permissions` mode);
/// - `SETUID`, `SETGID`: root dropping to another user (`su`, `runuser`, package scripts);
/// - `KILL`: signalling processes of other users (session delete, timeouts).
pub const ROOT_CAPS: [&str; 6] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETUID",
    "SETGID",
    "KILL",
];

/// What the agent remembers about one sandbox (the persisted part is in the state file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    pub container_id: String,
    /// The host directory mounted at `/run/cove`.
    pub dir: PathBuf,
    #[serde(default)]
    pub spec: Option<SandboxSpec>,
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub warm: bool,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub env_overlay: BTreeMap<String, String>,
    #[serde(skip, default = "unknown")]
    pub state: SandboxState,
    #[serde(skip)]
    pub error: Option<String>,
    #[serde(skip)]
    pub daemon_version: Option<String>,
}

fn unknown() -> SandboxState {
    SandboxState::Unknown
}

impl Record {
    fn status(&self) -> SandboxStatus {
        SandboxStatus {
            id: self.id.clone(),
            state: self.state,
            generation: self.generation,
            desired_state: self.spec.as_ref().map(|s| s.desired_state),
            container_id: Some(self.container_id.clone()),
            snapshot: self.spec.as_ref().map(|s| s.snapshot.clone()),
            org_id: self.org_id.clone(),
            warm: self.warm,
            daemon_version: self.daemon_version.clone(),
            error_reason: self.error.clone(),
        }
    }
}

pub struct Reconciler {
    cfg: Config,
    runtime: Arc<dyn ContainerRuntime>,
    toolbox_bin: PathBuf,
    sandboxes: RwLock<HashMap<String, Record>>,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pool: Pool,
}

/// Sandbox ids become container names and directory names: keep them tame.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !id.starts_with('-')
        && !id.starts_with("pool-");
    if ok {
        Ok(())
    } else {
        Err(AgentError::BadRequest(format!(
            "invalid sandbox id {id:?} (1-64 of [A-Za-z0-9_-])"
        )))
    }
}

fn validate_spec(spec: &SandboxSpec) -> Result<()> {
    if spec.snapshot.trim().is_empty() {
        return Err(AgentError::BadRequest("snapshot is required".into()));
    }
    for k in spec.env.keys() {
        let mut bytes = k.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(AgentError::BadRequest(format!("invalid env name {k:?}")));
        }
    }
    let r = &spec.resources;
    if r.cpu.is_some_and(|c| !(c > 0.0 && c <= 256.0)) {
        return Err(AgentError::BadRequest("cpu must be in (0, 256]".into()));
    }
    if r.memory_mib.is_some_and(|m| m < 6) {
        return Err(AgentError::BadRequest(
            "memory must be at least 6 MiB".into(),
        ));
    }
    if r.pids.is_some_and(|p| p < 8) {
        return Err(AgentError::BadRequest("pids must be at least 8".into()));
    }
    for v in &spec.volumes {
        validate_id(&v.volume_id)?;
        let mp = Path::new(&v.mount_path);
        let clean = mp.is_absolute()
            && mp
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        if !clean || mp == Path::new("/") || mp.starts_with(RUN_DIR_IN_CONTAINER) {
            return Err(AgentError::BadRequest(format!(
                "invalid mount path {:?}",
                v.mount_path
            )));
        }
        if let Some(sub) = &v.subpath {
            let sp = Path::new(sub);
            if sp.is_absolute()
                || sp
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(AgentError::BadRequest(format!("invalid subpath {sub:?}")));
            }
        }
    }
    Ok(())
}

fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

fn env_file(env: &BTreeMap<String, String>) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

fn home_of(user: &str) -> String {
    match user.split(':').next().unwrap_or(user) {
        "root" | "0" => "/root".into(),
        "" => "/home/daytona".into(),
        u => format!("/home/{u}"),
    }
}

/// Creates the per-sandbox host dir (mode 0700, see `sandbox_dir`; the container's user gets it
/// once the container exists, [`Reconciler::hand_over_dir`]) with an (empty or filled) env file.
fn prepare_dir(dir: &Path, env: &BTreeMap<String, String>) -> Result<()> {
    crate::sandbox_dir::create(dir)?;
    let _ = std::fs::remove_file(dir.join(SOCKET_NAME));
    write_env(dir, env)
}

fn write_env(dir: &Path, env: &BTreeMap<String, String>) -> Result<()> {
    crate::sandbox_dir::write_file(dir, ENV_FILE, env_file(env).as_bytes())
}

/// Copies the toolbox binary to `<data-dir>/bin/cove-toolbox-<hash>` (content-addressed, so
/// running containers keep their inode and a restarted agent reuses the same file).
pub fn install_toolbox(cfg: &Config) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(&cfg.toolbox_bin)
        .map_err(|e| AgentError::io(format!("reading {}", cfg.toolbox_bin.display()), e))?;
    let hash = hex::encode(&sha2::Sha256::digest(&bytes)[..8]);
    let dir = cfg.data_dir.join("bin");
    std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("creating the bin dir", e))?;
    let dest = dir.join(format!("cove-toolbox-{hash}"));
    if !dest.is_file() {
        let tmp = dir.join(format!(".cove-toolbox-{hash}.{}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
            .and_then(|()| std::fs::rename(&tmp, &dest))
            .map_err(|e| AgentError::io(format!("installing {}", dest.display()), e))?;
    }
    Ok(dest)
}

impl Reconciler {
    pub fn new(cfg: Config, runtime: Arc<dyn ContainerRuntime>, toolbox_bin: PathBuf) -> Arc<Self> {
        let pool = Pool::new(cfg.warm_pool.clone());
        Arc::new(Self {
            cfg,
            runtime,
            toolbox_bin,
            sandboxes: RwLock::default(),
            locks: std::sync::Mutex::default(),
            pool,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn state_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("state")
    }

    fn sandboxes_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("sandboxes")
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut g = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(id.to_owned()).or_default().clone()
    }

    fn persist(&self, rec: &Record) -> Result<()> {
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("creating the state dir", e))?;
        let path = dir.join(format!("{}.json", rec.id));
        let tmp = dir.join(format!(".{}.json.tmp", rec.id));
        let body = serde_json::to_vec_pretty(rec)
            .map_err(|e| AgentError::io("encoding state", std::io::Error::other(e)))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| AgentError::io(format!("writing {}", path.display()), e))
    }

    fn load_state(&self, id: &str) -> Option<Record> {
        let body = std::fs::read(self.state_dir().join(format!("{id}.json"))).ok()?;
        serde_json::from_slice(&body).ok()
    }

    fn base_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (RUNNER_LABEL.to_owned(), self.cfg.runner_id.clone()),
        ])
    }

    /// The container spec of a sandbox (pool members use the default spec of their snapshot).
    fn container_spec(
        &self,
        name: String,
        spec: &SandboxSpec,
        image: &ImageInfo,
        dir: &Path,
        labels: HashMap<String, String>,
    ) -> ContainerSpec {
        let user = spec
            .os_user
            .clone()
            .or_else(|| image.user.clone())
            .unwrap_or_else(|| "daytona".into());
        let home = home_of(&user);
        let workdir = image.working_dir.clone().unwrap_or_else(|| home.clone());
        let mut cmd: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
        if cmd.is_empty() {
            cmd = vec!["sleep".into(), "infinity".into()];
        }
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("BASH_ENV={RUN_DIR_IN_CONTAINER}/{ENV_FILE}"));
        env.push(format!("HOME={home}"));
        let mut binds = vec![
            format!("{}:{RUN_DIR_IN_CONTAINER}:rw", dir.display()),
            format!("{}:{TOOLBOX_IN_CONTAINER}:ro", self.toolbox_bin.display()),
        ];
        for v in &spec.volumes {
            let mut src = self.cfg.volumes_dir.join(&v.volume_id);
            if let Some(sub) = &v.subpath {
                src = src.join(sub);
            }
            let _ = std::fs::create_dir_all(&src);
            let mode = if v.read_only { "ro" } else { "rw" };
            binds.push(format!("{}:{}:{mode}", src.display(), v.mount_path));
        }
        let r = &spec.resources;
        let is_root = matches!(user.split(':').next(), Some("root" | "0"));
        ContainerSpec {
            name,
            image: spec.snapshot.clone(),
            user,
            entrypoint: vec![
                TOOLBOX_IN_CONTAINER.into(),
                "--socket".into(),
                format!("{RUN_DIR_IN_CONTAINER}/{SOCKET_NAME}"),
                "--workdir".into(),
                workdir.clone(),
                "--home".into(),
                home,
                "--".into(),
            ],
            cmd,
            env,
            labels,
            working_dir: Some(workdir),
            binds,
            nano_cpus: Some((r.cpu.unwrap_or(DEFAULT_CPU) * 1e9) as i64),
            memory_bytes: Some((r.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB) * 1024 * 1024) as i64),
            pids_limit: Some(r.pids.unwrap_or(DEFAULT_PIDS)),
            network_none: spec.network == NetworkPolicy::BlockAll,
            network: (spec.network != NetworkPolicy::BlockAll)
                .then(|| self.cfg.network.name.clone()),
            cap_add: if is_root {
                ROOT_CAPS.iter().map(|c| (*c).to_owned()).collect()
            } else {
                vec![]
            },
            stop_timeout_secs: Some(i64::from(
                spec.stop_timeout_secs.unwrap_or(DEFAULT_STOP_SECS),
            )),
        }
    }

    async fn image(&self, snapshot: &str) -> Result<ImageInfo> {
        self.runtime
            .image(snapshot)
            .await?
            .ok_or_else(|| AgentError::SnapshotNotFound(snapshot.to_owned()))
    }

    /// Waits for the daemon after a start; returns its version.
    async fn wait_toolbox(&self, dir: &Path, container_id: &str) -> Result<Option<String>> {
        if !self.cfg.probe_toolbox {
            return Ok(None);
        }
        crate::toolbox::wait_ready(&dir.join(SOCKET_NAME), container_id, READY_TIMEOUT)
            .await
            .map(Some)
            .map_err(|source| AgentError::ToolboxUnavailable {
                id: container_id.to_owned(),
                source,
            })
    }

    /// Gives a new container's host dir to the container's user (uid from the image's
    /// `/etc/passwd` for a name; a runtime that cannot read files leaves the dir as it is).
    async fn hand_over_dir(&self, cid: &str, user: &str, image_id: &str, dir: &Path) -> Result<()> {
        use crate::sandbox_dir::{cached_uid, remember_uid, uid_of};
        let uid = match uid_of(user, None).or_else(|| cached_uid(image_id, user)) {
            Some(uid) => uid,
            None => {
                let Some(passwd) = self.runtime.read_file(cid, "/etc/passwd").await? else {
                    return Ok(());
                };
                let uid =
                    uid_of(user, Some(&String::from_utf8_lossy(&passwd))).ok_or_else(|| {
                        AgentError::BadRequest(format!(
                            "user {user:?} is not in the image's /etc/passwd"
                        ))
                    })?;
                remember_uid(image_id, user, uid);
                uid
            }
        };
        crate::sandbox_dir::hand_over(dir, uid)
    }

    /// Creates and starts one warm container of `image`.
    pub async fn create_pool_member(&self, image: &str) -> Result<PoolEntry> {
        let info = self.image(image).await?;
        let slot = format!("pool-{}", uuid::Uuid::new_v4().simple());
        let dir = self.sandboxes_dir().join(&slot);
        prepare_dir(&dir, &BTreeMap::new())?;
        let mut labels = self.base_labels();
        labels.insert(labels::POOL.into(), "true".into());
        labels.insert(labels::SNAPSHOT.into(), image.into());
        let name = format!("cove-pool-{}-{}", self.cfg.runner_id, &slot[5..17]);
        let cspec = self.container_spec(name, &SandboxSpec::new(image), &info, &dir, labels);
        let cid = self.runtime.create(&cspec).await?;
        let started = async {
            self.hand_over_dir(&cid, &cspec.user, &info.id, &dir)
                .await?;
            self.runtime.start(&cid).await?;
            self.wait_toolbox(&dir, &cid).await
        }
        .await;
        match started {
            Ok(version) => Ok(PoolEntry {
                container_id: cid,
                dir,
                daemon_version: version,
            }),
            Err(e) => {
                let _ = self.runtime.remove(&cid).await;
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Whether a warm container (made with the snapshot's default spec) can serve `spec`. Values
    /// spelled out but equal to the defaults count as defaults: the control plane always sends
    /// the sandbox's user and resources.
    async fn warm_eligible(&self, spec: &SandboxSpec) -> bool {
        let r = &spec.resources;
        let default_resources = r.cpu.is_none_or(|c| (c - DEFAULT_CPU).abs() < f64::EPSILON)
            && r.memory_mib.is_none_or(|m| m == DEFAULT_MEMORY_MIB)
            && r.disk_gib.is_none_or(|d| d == DEFAULT_DISK_GIB)
            && r.pids.is_none_or(|p| p == DEFAULT_PIDS);
        let shape = spec.allow_warm_pool != Some(false)
            && spec.desired_state == DesiredState::Started
            && default_resources
            && spec.volumes.is_empty()
            && spec.network == NetworkPolicy::Allow
            && spec.stop_timeout_secs.is_none()
            && self.pool.is_pooled(&spec.snapshot);
        if !shape {
            return false;
        }
        match &spec.os_user {
            None => true,
            // Pool members run as the image's user, else `daytona` (see `container_spec`).
            Some(user) => match self.image(&spec.snapshot).await {
                Ok(image) => image.user.as_deref().unwrap_or("daytona") == user,
                Err(_) => false,
            },
        }
    }

    /// Rebuilds the view from Docker and the state files (agent start).
    pub async fn recover(&self) -> Result<()> {
        let containers = self.runtime.list(RUNNER_LABEL, &self.cfg.runner_id).await?;
        let mut map = HashMap::new();
        for c in containers {
            let id = match c.labels.get(labels::SANDBOX_ID) {
                Some(id) => id.clone(),
                None if c.labels.get(labels::POOL).map(String::as_str) == Some("true") => {
                    if let Some(id) = c.name.strip_prefix("cove-sb-") {
                        id.to_owned()
                    } else {
                        // An unclaimed pool member: reuse it when it still runs.
                        let image = c.labels.get(labels::SNAPSHOT).cloned().unwrap_or_default();
                        let dir = c.run_dir.clone().unwrap_or_default();
                        if c.running && self.pool.missing(&image) > 0 {
                            let v = self.wait_toolbox(&dir, &c.id).await.ok().flatten();
                            self.pool.put(
                                &image,
                                PoolEntry {
                                    container_id: c.id.clone(),
                                    dir,
                                    daemon_version: v,
                                },
                            );
                        } else {
                            let _ = self.runtime.remove(&c.id).await;
                            if dir.starts_with(self.sandboxes_dir()) {
                                let _ = std::fs::remove_dir_all(&dir);
                            }
                        }
                        continue;
                    }
                }
                None => continue,
            };
            let mut rec = self.load_state(&id).unwrap_or_else(|| Record {
                id: id.clone(),
                container_id: c.id.clone(),
                dir: PathBuf::new(),
                spec: None,
                generation: 0,
                warm: c.labels.contains_key(labels::POOL),
                org_id: c.labels.get(labels::ORG_ID).cloned(),
                env_overlay: BTreeMap::new(),
                state: SandboxState::Unknown,
                error: None,
                daemon_version: None,
            });
            rec.container_id = c.id.clone();
            if let Some(d) = c.run_dir.clone() {
                rec.dir = d;
            }
            rec.state = if c.running {
                SandboxState::Started
            } else {
                SandboxState::Stopped
            };
            if c.running {
                // Quick probe: the daemon normally answers at once.
                rec.daemon_version =
                    crate::toolbox::probe(&rec.dir.join(SOCKET_NAME), &rec.container_id)
                        .await
                        .ok();
            }
            map.insert(id, rec);
        }
        // State files whose container is gone belong to sandboxes that no longer exist.
        if let Ok(rd) = std::fs::read_dir(self.state_dir()) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".json")
                    && !map.contains_key(id)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        tracing::info!(sandboxes = map.len(), warm = ?self.pool.counts(), "recovered state from Docker");
        *self.sandboxes.write().await = map;
        Ok(())
    }

    /// `PUT /v1/sandboxes/{id}`.
    pub async fn apply(&self, id: &str, spec: SandboxSpec) -> Result<SandboxStatus> {
        validate_id(id)?;
        validate_spec(&spec)?;
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let existing = self.sandboxes.read().await.get(id).cloned();
        let mut rec = match existing {
            Some(mut rec) => {
                if spec.generation < rec.generation {
                    return Err(AgentError::Conflict {
                        code: "STALE_GENERATION",
                        message: format!(
                            "generation {} is older than the applied generation {}",
                            spec.generation, rec.generation
                        ),
                    });
                }
                if spec.generation == rec.generation && rec.spec.is_some() {
                    return Ok(rec.status());
                }
                if let Some(old) = &rec.spec
                    && !old.same_shape(&spec)
                {
                    return Err(AgentError::Conflict {
                        code: "IMMUTABLE_FIELD",
                        message: "only desiredState and stopTimeoutSecs may change; destroy and re-create the sandbox".into(),
                    });
                }
                rec.generation = spec.generation;
                rec.spec = Some(spec.clone());
                rec
            }
            None => self.create(id, &spec).await?,
        };
        let result = self.converge(&mut rec).await;
        if let Err(e) = &result {
            rec.state = SandboxState::Error;
            rec.error = Some(e.external_message());
        }
        self.persist(&rec)?;
        let status = rec.status();
        self.sandboxes.write().await.insert(id.to_owned(), rec);
        result.map(|()| status)
    }

    /// Makes a new sandbox: a warm container when one matches, else a fresh one (not started).
    async fn create(&self, id: &str, spec: &SandboxSpec) -> Result<Record> {
        if self.warm_eligible(spec).await
            && let Some(entry) = self.pool.take(&spec.snapshot)
        {
            match self.claim(id, spec, &entry).await {
                Ok(rec) => return Ok(rec),
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "claiming a warm container failed; creating a fresh one");
                    let _ = self.runtime.remove(&entry.container_id).await;
                    let _ = std::fs::remove_dir_all(&entry.dir);
                }
            }
        }
        let image = self.image(&spec.snapshot).await?;
        let dir = self.sandboxes_dir().join(id);
        prepare_dir(&dir, &BTreeMap::new())?;
        let mut labels = self.base_labels();
        labels.insert(labels::SANDBOX_ID.into(), id.into());
        labels.insert(labels::SNAPSHOT.into(), spec.snapshot.clone());
        if let Some(org) = &spec.org_id {
            labels.insert(labels::ORG_ID.into(), org.clone());
        }
        for (k, v) in &spec.labels {
            labels.insert(format!("{}{k}", labels::USER_PREFIX), v.clone());
        }
        let name = format!("cove-sb-{id}");
        let cspec = self.container_spec(name.clone(), spec, &image, &dir, labels);
        let container_id = match self.runtime.create(&cspec).await {
            Ok(cid) => cid,
            Err(crate::runtime::RuntimeError::Conflict(_)) => {
                // A leftover with our name (e.g. a crash between create and persist): replace it.
                self.runtime.remove(&name).await?;
                self.runtime.create(&cspec).await?
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self
            .hand_over_dir(&container_id, &cspec.user, &image.id, &dir)
            .await
        {
            let _ = self.runtime.remove(&container_id).await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(Record {
            id: id.to_owned(),
            container_id,
            dir,
            spec: Some(spec.clone()),
            generation: spec.generation,
            warm: false,
            org_id: spec.org_id.clone(),
            env_overlay: BTreeMap::new(),
            state: SandboxState::Stopped,
            error: None,
            daemon_version: None,
        })
    }

    async fn claim(&self, id: &str, spec: &SandboxSpec, entry: &PoolEntry) -> Result<Record> {
        self.runtime
            .rename(&entry.container_id, &format!("cove-sb-{id}"))
            .await?;
        let link = self.sandboxes_dir().join(id);
        let _ = std::fs::remove_file(&link);
        if let Some(slot) = entry.dir.file_name() {
            let _ = std::os::unix::fs::symlink(slot, &link);
        }
        if !spec.env.is_empty() {
            write_env(&entry.dir, &spec.env)?;
        }
        Ok(Record {
            id: id.to_owned(),
            container_id: entry.container_id.clone(),
            dir: entry.dir.clone(),
            spec: Some(spec.clone()),
            generation: spec.generation,
            warm: true,
            org_id: spec.org_id.clone(),
            env_overlay: spec.env.clone(),
            state: SandboxState::Started,
            error: None,
            daemon_version: entry.daemon_version.clone(),
        })
    }

    /// Moves the container toward the spec's desired state.
    async fn converge(&self, rec: &mut Record) -> Result<()> {
        let Some(spec) = rec.spec.clone() else {
            return Ok(());
        };
        let running = self
            .runtime
            .inspect(&rec.container_id)
            .await?
            .map(|c| c.running);
        let Some(running) = running else {
            rec.state = SandboxState::Error;
            rec.error = Some("the container is gone".into());
            return Err(AgentError::Conflict {
                code: "CONTAINER_GONE",
                message: format!(
                    "the container of sandbox {} no longer exists; destroy it",
                    rec.id
                ),
            });
        };
        match spec.desired_state {
            DesiredState::Started => {
                if !running {
                    rec.state = SandboxState::Starting;
                    let _ = std::fs::remove_file(rec.dir.join(SOCKET_NAME));
                    self.runtime.start(&rec.container_id).await?;
                }
                if !running || rec.daemon_version.is_none() {
                    rec.daemon_version = self.wait_toolbox(&rec.dir, &rec.container_id).await?;
                }
                rec.state = SandboxState::Started;
            }
            DesiredState::Stopped => {
                if running {
                    rec.state = SandboxState::Stopping;
                    let t = spec.stop_timeout_secs.unwrap_or(DEFAULT_STOP_SECS);
                    self.runtime.stop(&rec.container_id, t).await?;
                }
                rec.state = SandboxState::Stopped;
            }
        }
        rec.error = None;
        Ok(())
    }

    /// `GET /v1/sandboxes/{id}`: the view, refreshed from Docker.
    pub async fn status(&self, id: &str) -> Result<SandboxStatus> {
        validate_id(id)?;
        let Some(mut rec) = self.sandboxes.read().await.get(id).cloned() else {
            return Err(AgentError::SandboxNotFound(id.to_owned()));
        };
        match self.runtime.inspect(&rec.container_id).await? {
            Some(c) if c.running => {
                if matches!(rec.state, SandboxState::Stopped | SandboxState::Unknown) {
                    rec.state = SandboxState::Started;
                }
            }
            Some(_) => {
                if rec.state == SandboxState::Started {
                    rec.state = SandboxState::Stopped;
                }
            }
            None => {
                rec.state = SandboxState::Error;
                rec.error = Some("the container is gone".into());
            }
        }
        let status = rec.status();
        if let Some(r) = self.sandboxes.write().await.get_mut(id) {
            r.state = rec.state;
            r.error = rec.error;
        }
        Ok(status)
    }

    /// Re-reads one sandbox's container state unless a `PUT`/`DELETE` holds it; returns the state
    /// the agent believed before and the status now. `None` when busy or unknown.
    pub async fn observe(&self, id: &str) -> Option<(SandboxState, SandboxStatus)> {
        let lock = self.lock_for(id);
        let _guard = lock.try_lock().ok()?;
        let before = self.sandboxes.read().await.get(id)?.state;
        let now = self.status(id).await.ok()?;
        Some((before, now))
    }

    /// Ids of the sandboxes the agent holds.
    pub async fn ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sandboxes.read().await.keys().cloned().collect();
        v.sort();
        v
    }

    /// Tags of the local images (the snapshots this runner can start without a pull).
    pub async fn image_tags(&self) -> Vec<String> {
        match self.runtime.image_tags().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list images");
                Vec::new()
            }
        }
    }

    pub async fn list(&self) -> Vec<SandboxStatus> {
        let mut v: Vec<_> = self
            .sandboxes
            .read()
            .await
            .values()
            .map(Record::status)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// `DELETE /v1/sandboxes/{id}` (idempotent).
    pub async fn destroy(&self, id: &str) -> Result<SandboxStatus> {
        validate_id(id)?;
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let rec = self.sandboxes.read().await.get(id).cloned();
        if let Some(rec) = &rec {
            self.runtime.remove(&rec.container_id).await?;
        } else {
            // Unknown to us: still remove a container of that name we may have left behind.
            self.runtime.remove(&format!("cove-sb-{id}")).await?;
        }
        let link = self.sandboxes_dir().join(id);
        if let Some(rec) = &rec
            && rec.dir.starts_with(self.sandboxes_dir())
        {
            let _ = std::fs::remove_dir_all(&rec.dir);
        }
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&link);
        let _ = std::fs::remove_file(self.state_dir().join(format!("{id}.json")));
        self.sandboxes.write().await.remove(id);
        drop(_guard);
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(SandboxStatus::destroyed(id))
    }

    /// `POST /v1/sandboxes/{id}/backup`: `docker commit` to `image`.
    pub async fn backup(&self, id: &str, image: &str) -> Result<String> {
        validate_id(id)?;
        let cid = self
            .sandboxes
            .read()
            .await
            .get(id)
            .map(|r| r.container_id.clone())
            .ok_or_else(|| AgentError::SandboxNotFound(id.to_owned()))?;
        let (repo, tag) = split_image(image)?;
        Ok(self.runtime.commit(&cid, repo, tag).await?)
    }

    /// Where to forward toolbox calls of `id`.
    pub async fn toolbox_target(&self, id: &str) -> Result<Target> {
        let g = self.sandboxes.read().await;
        let rec = g
            .get(id)
            .ok_or_else(|| AgentError::SandboxNotFound(id.to_owned()))?;
        if rec.state != SandboxState::Started {
            return Err(AgentError::Conflict {
                code: "SANDBOX_NOT_STARTED",
                message: format!("sandbox {id} is not started"),
            });
        }
        Ok(Target {
            sandbox_id: id.to_owned(),
            socket: rec.dir.join(SOCKET_NAME),
            container_id: rec.container_id.clone(),
            env_overlay: rec.env_overlay.clone(),
        })
    }

    /// Capacity metrics for heartbeats and `/v1/info`.
    pub async fn metrics(&self) -> RunnerMetrics {
        let g = self.sandboxes.read().await;
        let mut m = crate::heartbeat::host_metrics(&self.cfg.data_dir);
        for rec in g.values() {
            let r = rec
                .spec
                .as_ref()
                .map(|s| s.resources.clone())
                .unwrap_or_default();
            if rec.state == SandboxState::Started {
                m.current_started_sandboxes += 1;
                m.current_allocated_cpu += r.cpu.unwrap_or(DEFAULT_CPU);
                m.current_allocated_memory_gib +=
                    r.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB) as f64 / 1024.0;
            }
            m.current_allocated_disk_gib += r.disk_gib.unwrap_or(DEFAULT_DISK_GIB) as f64;
        }
        m.current_snapshot_count = self.pool.targets().len() as u32;
        m
    }

    /// Removes the unclaimed warm containers (clean shutdown), including one whose creation was
    /// cut short before it joined the pool.
    pub async fn drain_pool(&self) {
        for e in self.pool.drain() {
            let _ = self.runtime.remove(&e.container_id).await;
            let _ = std::fs::remove_dir_all(&e.dir);
        }
        let Ok(containers) = self.runtime.list(RUNNER_LABEL, &self.cfg.runner_id).await else {
            return;
        };
        for c in containers {
            let unclaimed = c.labels.get(labels::POOL).map(String::as_str) == Some("true")
                && !c.labels.contains_key(labels::SANDBOX_ID)
                && !c.name.starts_with("cove-sb-");
            if unclaimed {
                let _ = self.runtime.remove(&c.id).await;
                if let Some(dir) = c.run_dir.filter(|d| d.starts_with(self.sandboxes_dir())) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

fn split_image(image: &str) -> Result<(&str, &str)> {
    let bad =
        || AgentError::BadRequest(format!("invalid image reference {image:?} (want repo:tag)"));
    let (repo, tag) = match image.rfind(':') {
        Some(i) if !image[i + 1..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    };
    let repo_ok = !repo.is_empty()
        && repo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b));
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if repo_ok && tag_ok {
        Ok((repo, tag))
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::FakeRuntime;

    fn setup(pool: Vec<(String, usize)>) -> (tempfile::TempDir, Arc<FakeRuntime>, Arc<Reconciler>) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = Config::for_tests(dir.path().to_path_buf());
        cfg.warm_pool = pool;
        let rt = Arc::new(FakeRuntime::with_image("img:1"));
        let rec = Reconciler::new(cfg, rt.clone(), dir.path().join("toolbox"));
        (dir, rt, rec)
    }

    #[tokio::test]
    async fn apply_is_idempotent_and_ordered() {
        let (_d, rt, rec) = setup(vec![]);
        let spec = SandboxSpec::new("img:1");
        let s = rec.apply("sb1", spec.clone()).await.expect("apply");
        assert_eq!(s.state, SandboxState::Started);
        let calls = rt.calls().len();
        let again = rec.apply("sb1", spec.clone()).await.expect("again");
        assert_eq!(again.state, SandboxState::Started);
        assert_eq!(rt.calls().len(), calls, "same generation is a no-op");

        let mut stop = spec.clone();
        stop.generation = 2;
        stop.desired_state = DesiredState::Stopped;
        stop.stop_timeout_secs = Some(0);
        // stopTimeoutSecs may change, so force-stopping is allowed.
        let s = rec.apply("sb1", stop.clone()).await.expect("stop");
        assert_eq!(s.state, SandboxState::Stopped);
        assert!(
            rt.calls()
                .iter()
                .any(|c| c.starts_with("stop:") && c.ends_with(":0"))
        );

        let err = rec.apply("sb1", spec.clone()).await.expect_err("stale");
        assert_eq!(err.code(), "STALE_GENERATION");

        let mut changed = stop.clone();
        changed.generation = 3;
        changed.env.insert("A".into(), "1".into());
        assert_eq!(
            rec.apply("sb1", changed)
                .await
                .expect_err("immutable")
                .code(),
            "IMMUTABLE_FIELD"
        );

        rec.destroy("sb1").await.expect("destroy");
        rec.destroy("sb1").await.expect("destroy twice");
        assert_eq!(rt.container_count(), 0);
        assert!(matches!(
            rec.status("sb1").await,
            Err(AgentError::SandboxNotFound(_))
        ));
    }

    #[tokio::test]
    async fn container_is_hardened() {
        let (_d, rt, rec) = setup(vec![]);
        let mut spec = SandboxSpec::new("img:1");
        spec.resources.memory_mib = Some(256);
        spec.resources.pids = Some(64);
        spec.network = NetworkPolicy::BlockAll;
        spec.org_id = Some("org1".into());
        spec.env.insert("FOO".into(), "bar".into());
        let s = rec.apply("sb2", spec).await.expect("apply");
        let c = rt
            .spec_of(s.container_id.as_deref().expect("cid"))
            .expect("spec");
        assert_eq!(c.user, "daytona");
        assert!(c.cap_add.is_empty());
        assert_eq!(c.memory_bytes, Some(256 << 20));
        assert_eq!(c.pids_limit, Some(64));
        assert!(c.network_none);
        assert_eq!(
            c.labels.get(labels::SANDBOX_ID).map(String::as_str),
            Some("sb2")
        );
        assert_eq!(
            c.labels.get(labels::ORG_ID).map(String::as_str),
            Some("org1")
        );
        assert!(c.env.contains(&"FOO=bar".to_owned()));
        assert_eq!(c.entrypoint[0], TOOLBOX_IN_CONTAINER);
        assert!(
            c.binds
                .iter()
                .any(|b| b.ends_with(":/usr/local/bin/cove-toolbox:ro"))
        );
        assert!(c.binds.iter().any(|b| b.ends_with(":/run/cove:rw")));

        let mut root = SandboxSpec::new("img:1");
        root.os_user = Some("root".into());
        let s = rec.apply("sb3", root).await.expect("apply");
        let c = rt
            .spec_of(s.container_id.as_deref().expect("cid"))
            .expect("spec");
        assert_eq!(c.cap_add.len(), ROOT_CAPS.len());
    }

    #[tokio::test]
    async fn rejects_bad_input() {
        let (_d, _rt, rec) = setup(vec![]);
        for id in ["", "../x", "a/b", "pool-1", &"x".repeat(65)] {
            assert!(
                rec.apply(id, SandboxSpec::new("img:1")).await.is_err(),
                "{id}"
            );
        }
        let mut s = SandboxSpec::new("img:1");
        s.volumes.push(cove_runner_api::VolumeMount {
            volume_id: "v1".into(),
            mount_path: "/data/../etc".into(),
            subpath: None,
            read_only: false,
        });
        assert_eq!(
            rec.apply("ok", s).await.expect_err("bad mount").code(),
            "BAD_REQUEST"
        );
        let err = rec
            .apply("ok", SandboxSpec::new("missing:1"))
            .await
            .expect_err("no image");
        assert_eq!(err.code(), "SNAPSHOT_NOT_FOUND");
    }

    #[tokio::test]
    async fn warm_pool_claim_and_recover() {
        let (d, rt, rec) = setup(vec![("img:1".into(), 1)]);
        let entry = rec.create_pool_member("img:1").await.expect("member");
        rec.pool().put("img:1", entry.clone());
        let mut spec = SandboxSpec::new("img:1");
        spec.env.insert("GREETING".into(), "it's".into());
        spec.org_id = Some("org9".into());
        let s = rec.apply("warm1", spec).await.expect("apply");
        assert!(s.warm);
        assert_eq!(s.container_id.as_deref(), Some(entry.container_id.as_str()));
        assert!(rt.calls().iter().any(|c| c.ends_with(":cove-sb-warm1")));
        let env = std::fs::read_to_string(entry.dir.join(ENV_FILE)).expect("env file");
        assert_eq!(env, "export GREETING='it'\\''s'\n");
        let t = rec.toolbox_target("warm1").await.expect("target");
        assert_eq!(
            t.env_overlay.get("GREETING").map(String::as_str),
            Some("it's")
        );
        assert!(d.path().join("sandboxes/warm1").exists());

        // Not eligible: limits differ.
        let mut big = SandboxSpec::new("img:1");
        big.resources.memory_mib = Some(2048);
        assert!(!rec.apply("cold1", big).await.expect("cold").warm);

        // A new agent over the same runtime and data dir sees both.
        let cfg = rec.config().clone();
        let rec2 = Reconciler::new(cfg, rt.clone(), d.path().join("toolbox"));
        rec2.recover().await.expect("recover");
        let list = rec2.list().await;
        assert_eq!(list.len(), 2);
        let w = rec2.status("warm1").await.expect("warm1");
        assert_eq!(w.state, SandboxState::Started);
        assert_eq!(w.org_id.as_deref(), Some("org9"));
        assert_eq!(w.generation, 1);
        let t = rec2.toolbox_target("warm1").await.expect("target");
        assert_eq!(t.socket, entry.dir.join(SOCKET_NAME));
    }

    #[test]
    fn image_refs() {
        assert_eq!(
            split_image("backup/sb1:20260101").ok(),
            Some(("backup/sb1", "20260101"))
        );
        assert_eq!(
            split_image("localhost:5000/x").ok(),
            Some(("localhost:5000/x", "latest"))
        );
        assert!(split_image("Bad Name").is_err());
    }
}
