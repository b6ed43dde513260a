//! `cove-snapshot-bench [--image IMAGE] [--runs N]`
//!
//! Starts a `docker-registry` (Debian's package, no auth, temp storage) and two `cove-runner`s
//! (the binary next to this one) and prints PUT → `ready` of snapshot jobs:
//! - a one-layer build on the base image (local only, then with a push to the registry);
//! - the same build again under another key (the image is present: no build);
//! - the pull of the pushed ref on the second agent (its local tag removed first; both agents
//!   share the Docker engine, so only the new layer travels).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cove_runner_api::client::RunnerClient;
use cove_runner_api::{PushTarget, SnapshotSource, SnapshotSpec, SnapshotStatus, build_ref};

const TOKEN: &str = "bench-token";

type Error = Box<dyn std::error::Error>;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed (by PID) on drop, with its temp dir removed.
struct Proc {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = rustix::mount::unmount(
            self.dir.join("sandboxes"),
            rustix::mount::UnmountFlags::DETACH,
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn registry(tag: &str) -> Result<(Proc, String), Error> {
    let dir = std::env::temp_dir().join(format!("cove-snapbench-reg-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("storage").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let p = Proc { child, dir };
    let t = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if t.elapsed() > Duration::from_secs(15) {
            return Err("docker-registry did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((p, addr))
}

fn agent(name: &str) -> Result<(Proc, RunnerClient), Error> {
    let runner = std::env::current_exe()?.with_file_name("cove-runner");
    let dir = std::env::temp_dir().join(format!("cove-snapbench-{name}-{}", std::process::id()));
    let mut child = Command::new(runner)
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--runner-id"])
        .arg(format!("snapbench{name}{}", std::process::id()))
        .arg("--data-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("cove-runner listening on ")
        .ok_or("unexpected agent output")?
        .to_owned();
    Ok((Proc { child, dir }, RunnerClient::new(url, TOKEN)))
}

/// PUT then GET until the job ends; the time it took.
async fn timed(
    client: &RunnerClient,
    spec: &SnapshotSpec,
) -> Result<(Duration, SnapshotStatus), Error> {
    let key = uuid::Uuid::new_v4().to_string();
    let t = Instant::now();
    let mut st = client
        .put_snapshot(&key, spec, Some(30))
        .await?
        .into_status();
    while !st.state.is_final() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        st = client.get_snapshot(&key).await?;
    }
    let took = t.elapsed();
    match &st.error_reason {
        Some(e) => Err(format!("snapshot job failed: {e}").into()),
        None => Ok((took, st)),
    }
}

fn row(name: &str, v: &mut [Duration]) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = v[v.len() / 2];
    println!(
        "{name:<52} n={:<3} min {:>9.1} ms  p50 {:>9.1} ms  max {:>9.1} ms",
        v.len(),
        ms(v[0]),
        ms(p50),
        ms(v[v.len() - 1])
    );
}

fn build(org: &str, registry: &str, base: &str, push: bool, nonce: &str) -> SnapshotSpec {
    let dockerfile = format!("FROM {base}\nRUN echo {nonce} > /tmp/cove-bench\n");
    let r#ref = build_ref(registry, org, &dockerfile, &[]);
    SnapshotSpec {
        org_id: org.to_owned(),
        source: SnapshotSource::Build {
            dockerfile,
            context_hashes: vec![],
            r#ref,
        },
        push: push.then(|| PushTarget {
            registry: registry.to_owned(),
            project: format!("cove-{org}"),
            auth: None,
        }),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let base = arg("--image").unwrap_or_else(|| "cove-sandbox-base:latest".into());
    let runs: usize = arg("--runs").map_or(Ok(3), |s| s.parse())?;
    let (_reg, registry_addr) = registry("internal")?;
    let (_a, a) = agent("a")?;
    let (_b, b) = agent("b")?;
    let (mut local, mut pushed, mut hit, mut pull) = (vec![], vec![], vec![], vec![]);
    let mut made = Vec::new();
    for i in 0..runs {
        let org = uuid::Uuid::new_v4().to_string();
        let nonce = format!("{i}-{}", uuid::Uuid::new_v4().simple());
        let spec = build(
            &org,
            &registry_addr,
            &base,
            false,
            &format!("local-{nonce}"),
        );
        let (d, st) = timed(&a, &spec).await?;
        local.push(d);
        made.extend(st.r#ref);
        let spec = build(&org, &registry_addr, &base, true, &nonce);
        let (d, st) = timed(&a, &spec).await?;
        pushed.push(d);
        let r = st.r#ref.ok_or("no ref")?;
        made.push(r.clone());
        hit.push(timed(&a, &spec).await?.0);
        let _ = Command::new("docker")
            .args(["rmi", &r])
            .stdout(Stdio::null())
            .status();
        let propagate = SnapshotSpec {
            org_id: org.clone(),
            source: SnapshotSource::Pull {
                image: r.clone(),
                auth: None,
            },
            push: None,
        };
        pull.push(timed(&b, &propagate).await?.0);
    }
    println!("== snapshot jobs, PUT -> ready ({runs} runs, base {base})");
    row("one-layer build on the base image (local)", &mut local);
    row(
        "one-layer build + push to the internal registry",
        &mut pushed,
    );
    row("same build again (image present: no build)", &mut hit);
    row("pull of the pushed ref on a second agent", &mut pull);
    for r in made {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &r])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    Ok(())
}
