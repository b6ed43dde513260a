//! A Docker registry for tests: Debian's `docker-registry` (CNCF distribution) on
//! `127.0.0.1:<free port>`, storage in a temp dir, optionally behind htpasswd Basic auth
//! (bcrypt entries written with the `bcrypt` crate); killed by PID when dropped. Plus
//! [`push_image`]: tag a local image and push it (Docker CLI, own config dir per call).
//!
//! `COVE_DOCKER_REGISTRY_BIN` overrides `/usr/bin/docker-registry`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::{Proc, Stderr};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `(user, password)`: require HTTP Basic auth (htpasswd) for everything.
    pub basic_auth: Option<(String, String)>,
}

/// A running registry.
pub struct Registry {
    proc: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

fn bin() -> PathBuf {
    std::env::var_os("COVE_DOCKER_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { what, path, source }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(io("bind", Path::new("127.0.0.1")))?;
    Ok(l.local_addr()
        .map_err(io("bind", Path::new("127.0.0.1")))?
        .port())
}

fn write_htpasswd(dir: &Path, user: &str, pass: &str) -> Result<PathBuf> {
    let path = dir.join("htpasswd");
    let hash = bcrypt::hash_with_result(pass, 5)
        .map_err(|e| Error::Random {
            what: "htpasswd",
            reason: e.to_string(),
        })?
        .format_for_version(bcrypt::Version::TwoA);
    std::fs::write(&path, format!("{user}:{hash}\n")).map_err(io("write", &path))?;
    Ok(path)
}

fn write_config(dir: &Path, port: u16, htpasswd: Option<&Path>) -> Result<PathBuf> {
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    if let Some(h) = htpasswd {
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: cove-test\n    path: {}\n",
            h.display()
        ));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).map_err(io("write", &path))?;
    Ok(path)
}

impl Registry {
    /// Starts the registry and waits until it accepts connections.
    pub fn start(opts: RegistryOptions) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(io("create", Path::new("tempdir")))?;
        let htpasswd = match &opts.basic_auth {
            Some((u, p)) => Some(write_htpasswd(dir.path(), u, p)?),
            None => None,
        };
        let port = free_port()?;
        let config = write_config(dir.path(), port, htpasswd.as_deref())?;
        let mut cmd = Command::new(bin());
        cmd.arg("serve").arg(&config);
        let mut proc = Proc::spawn("docker-registry", &mut cmd, &Stderr::Quiet)?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !proc.running() || started.elapsed() > READY_TIMEOUT {
                let stderr = proc.stderr();
                proc.kill();
                return Err(Error::NotReady {
                    what: "docker-registry",
                    want: "a listening port",
                    exited: !proc.running(),
                    waited: started.elapsed(),
                    stdout: Vec::new(),
                    stderr,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Self {
            proc,
            port,
            _dir: dir,
        })
    }

    /// `127.0.0.1:<port>`: what image references start with.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process's PID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

fn docker(config: &Path, args: &[&str], stdin: Option<&str>) -> Result<()> {
    let what = format!("docker {}", args.join(" "));
    let mut child = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| Error::Spawn {
            what: what.clone(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|source| Error::Spawn {
                what: what.clone(),
                source,
            })?;
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        what: what.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Command { what, status })
    }
}

/// `docker login` (when `auth` is given) in a fresh config dir, so no credential leaks into
/// the user's `~/.docker`; returns the dir.
pub fn docker_login(host: &str, auth: Option<(&str, &str)>) -> Result<tempfile::TempDir> {
    let config = tempfile::tempdir().map_err(io("create", Path::new("tempdir")))?;
    if let Some((user, pass)) = auth {
        docker(
            config.path(),
            &["login", host, "-u", user, "--password-stdin"],
            Some(pass),
        )?;
    }
    Ok(config)
}

/// Tags the local image `local` as `target` (`host/repo:tag`), pushes it with `auth`, and
/// removes the tag again (the pushed image stays in the registry).
pub fn push_image(local: &str, target: &str, auth: Option<(&str, &str)>) -> Result<()> {
    let host = target.split('/').next().unwrap_or_default();
    let config = docker_login(host, auth)?;
    docker(config.path(), &["tag", local, target], None)?;
    let pushed = docker(config.path(), &["push", "--quiet", target], None);
    let _ = docker(config.path(), &["rmi", "--no-prune", target], None);
    pushed
}

/// Pulls `image` with `auth` (fresh config dir). The caller removes the local image.
pub fn pull_image(image: &str, auth: Option<(&str, &str)>) -> Result<()> {
    let host = image.split('/').next().unwrap_or_default();
    let config = docker_login(host, auth)?;
    docker(config.path(), &["pull", "--quiet", image], None)
}

/// Makes a one-file image `tag` (`docker import` of a tiny tar holding `/hello.txt` with
/// `content`): small enough to push and pull in a test in well under a second.
pub fn tiny_image(tag: &str, content: &str) -> Result<()> {
    let dir = tempfile::tempdir().map_err(io("create", Path::new("tempdir")))?;
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, content).map_err(io("write", &file))?;
    let tar = dir.path().join("image.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg("hello.txt")
        .status()
        .map_err(|source| Error::Spawn {
            what: "tar".into(),
            source,
        })?;
    if !status.success() {
        return Err(Error::Command {
            what: "tar".into(),
            status,
        });
    }
    let tar = tar.to_string_lossy().into_owned();
    docker(dir.path(), &["import", &tar, tag], None)
}

/// Removes local images (errors ignored: they may be gone already).
pub fn remove_images(tags: &[&str]) {
    let mut cmd = Command::new("docker");
    cmd.arg("rmi").arg("--force").args(tags);
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}
