//! Real parts of the snapshot tests: a Docker registry (Debian's `docker-registry`, optionally
//! behind htpasswd basic auth) and an S3 server (s3s-fs) on 127.0.0.1 with ports chosen at run
//! time. Each is stopped (by PID / task) when dropped. Swap for `cove_testkit::registry` once
//! it exists.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cove_runner_api::RegistryAuth;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `docker-registry serve` over a temp dir.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub auth: Option<RegistryAuth>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry; with `user`/`password`, every request needs basic auth.
    pub fn start(credentials: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = credentials {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: cove\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let t = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            auth: credentials.map(|(u, p)| RegistryAuth {
                username: u.into(),
                password: p.into(),
                server: addr.clone(),
            }),
            addr,
            _dir: dir,
        }
    }

    /// Whether `repo:tag` is in the registry (a manifest answers 200).
    pub async fn has(&self, repo: &str, tag: &str) -> bool {
        let mut req = reqwest::Client::new()
            .get(format!("http://{}/v2/{repo}/manifests/{tag}", self.addr))
            .header(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            );
        if let Some(a) = &self.auth {
            req = req.basic_auth(&a.username, Some(&a.password));
        }
        req.send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const S3_KEY: &str = "test-access-key";
pub const S3_SECRET: &str = "test-secret-key";

/// An s3s-fs server with one bucket.
pub struct S3 {
    pub url: String,
    pub bucket: String,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl S3 {
    pub async fn start(bucket: &str) -> S3 {
        use hyper_util::rt::TokioIo;
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join(bucket)).expect("bucket");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(S3_KEY, S3_SECRET));
        let service = b.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let svc = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        S3 {
            url,
            bucket: bucket.to_owned(),
            task,
            _dir: dir,
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_credential_types::Credentials::new(S3_KEY, S3_SECRET, None, None, "test");
        let cfg = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(&self.url)
            .force_path_style(true)
            .http_client(cove_runner_agent::snapshots::context::https_client())
            .build();
        aws_sdk_s3::Client::from_conf(cfg)
    }

    /// Uploads `{org}/{hash}/context.tar` holding `files`; returns `hash`.
    pub async fn put_context(&self, org: &str, files: &[(&str, &str)]) -> String {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, content.as_bytes())
                .expect("tar");
        }
        let bytes = b.into_inner().expect("tar");
        let hash = format!("{:x}", md5_like(&bytes));
        self.client()
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{org}/{hash}/context.tar"))
            .body(bytes.into())
            .send()
            .await
            .expect("put_object");
        hash
    }

    /// The agent flags and environment reaching this server.
    pub fn agent_args(&self) -> Vec<String> {
        vec![
            "--s3-endpoint".into(),
            self.url.clone(),
            "--s3-bucket".into(),
            self.bucket.clone(),
        ]
    }

    pub fn agent_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A content hash for context names (the SDK uses an MD5 of the files; any stable hex does).
fn md5_like(bytes: &[u8]) -> u128 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    u128::from_be_bytes(d[..16].try_into().expect("16 bytes"))
}

/// Removes local images by reference (best effort) when dropped.
#[derive(Default)]
pub struct Images(pub Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("docker")
                .args(["rmi", "-f", r])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `docker image inspect` succeeds.
pub fn local_image(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `docker rmi` of one tag (the image stays while it has others).
pub fn untag(reference: &str) {
    let _ = Command::new("docker")
        .args(["rmi", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
