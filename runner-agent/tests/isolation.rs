//! The per-sandbox host directory against real Docker (issue 9 item 6): a root sandbox plants a
//! setuid-root binary in its `/run/cove`; on the host it does not run with euid 0 for an
//! unprivileged user (the directory tree is mounted nosuid,nodev,noexec), the directories are
//! 0700 and owned by the sandbox's user, each sandbox sees only its own, and the toolbox keeps
//! working (warm-pool and cold sandboxes alike).

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Agent, image, sid, wait_until};

/// Runs `binary -u` (a copy of `id`) as uid/gid 65534 on the host, through an fd opened before
/// dropping privileges (so the parent directories' modes do not decide the outcome): what it
/// prints (the effective uid) or its error.
fn run_as_nobody(binary: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .args([
            "-c",
            r#"exec 3<"$0"; exec setpriv --reuid=65534 --regid=65534 --clear-groups /proc/self/fd/3 -u"#,
        ])
        .arg(binary)
        .output()
        .expect("setpriv");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.trim().to_owned())
}

fn run_dir(id: &str) -> PathBuf {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            r#"{{range .Mounts}}{{if eq .Destination "/run/cove"}}{{.Source}}{{end}}{{end}}"#,
        ])
        .arg(format!("cove-sb-{id}"))
        .output()
        .expect("docker inspect");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_setuid_binary_is_harmless() {
    let pool = format!("{}=1", image());
    let agent = Agent::start(&["--warm-pool", &pool]);
    let sandboxes = agent.data_dir.join("sandboxes");
    let mode = std::fs::metadata(&sandboxes).expect("sandboxes dir").mode();
    assert_eq!(
        mode & 0o7777,
        0o700,
        "no host user reaches the sandbox dirs"
    );
    let st = rustix::fs::statvfs(&sandboxes).expect("statvfs");
    use rustix::fs::StatVfsMountFlags as F;
    assert!(
        st.f_flag.contains(F::NOSUID | F::NODEV | F::NOEXEC),
        "{:?}",
        st.f_flag
    );

    wait_until("a warm container", Duration::from_secs(60), || async {
        let info: serde_json::Value = agent
            .http
            .get(format!("{}/v1/info", agent.url))
            .bearer_auth(common::TOKEN)
            .send()
            .await
            .expect("info")
            .json()
            .await
            .expect("json");
        info["warmPool"]
            .as_object()
            .is_some_and(|m| m.values().any(|v| v.as_u64() == Some(1)))
    })
    .await;
    let (root, user) = (sid("root"), sid("user"));
    let u = agent.sandbox(&user, |_| {}).await;
    assert!(u.warm, "the default sandbox comes from the warm pool");
    let r = agent
        .sandbox(&root, |s| s.os_user = Some("root".into()))
        .await;
    assert!(!r.warm);

    // The root sandbox plants a setuid-root copy of `id`.
    let (code, out) = agent
        .exec(
            &root,
            "cp /usr/bin/id /run/cove/id && chmod 4755 /run/cove/id && stat -c '%a %u' /run/cove/id",
        )
        .await;
    assert_eq!((code, out.trim()), (0, "4755 0"), "{out}");
    // It does not even run inside the sandbox.
    let (code, out) = agent.exec(&root, "/run/cove/id -u").await;
    assert_ne!(code, 0, "{out}");

    // On the host, an unprivileged user does not get euid 0 from it.
    let planted = run_dir(&root).join("id");
    assert!(planted.starts_with(&sandboxes), "{}", planted.display());
    let meta = std::fs::metadata(&planted).expect("planted file");
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o4755, 0));
    let (ok, out) = run_as_nobody(&planted);
    assert!(!(ok && out == "0"), "the planted binary ran as root: {out}");
    assert!(out.contains("Permission denied") || out == "65534", "{out}");
    // Control: the same file on an ordinary host directory does run as euid 0, so the check
    // above would catch a mount without the flags.
    let control_dir = tempfile::tempdir().expect("tmp");
    let control = control_dir.path().join("id");
    std::fs::copy(&planted, &control).expect("copy");
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    assert_eq!(run_as_nobody(&control), (true, "0".to_owned()));

    // Each directory: 0700, owned by its sandbox's user; the sandbox sees the flags.
    let (code, uid) = agent.exec(&user, "id -u").await;
    assert_eq!(code, 0);
    for (id, want_uid) in [(&root, 0u32), (&user, uid.trim().parse().expect("uid"))] {
        let dir = run_dir(id);
        let m = std::fs::metadata(&dir).expect("dir");
        assert_eq!(
            (m.mode() & 0o7777, m.uid()),
            (0o700, want_uid),
            "{}",
            dir.display()
        );
        let (code, line) = agent
            .exec(id, "grep ' /run/cove ' /proc/self/mountinfo")
            .await;
        assert_eq!(code, 0, "{line}");
        for flag in ["nosuid", "nodev", "noexec"] {
            assert!(line.contains(flag), "{id}: /run/cove is not {flag}: {line}");
        }
    }

    // The other sandbox sees only its own directory.
    let (code, listing) = agent.exec(&user, "ls -A /run/cove").await;
    assert_eq!(code, 0);
    let mut names: Vec<&str> = listing.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["env.sh", "toolbox.sock"], "{listing}");
    let (code, _) = agent
        .exec(
            &user,
            "find / -xdev -name id -path '*cove*' 2>/dev/null | grep -q .",
        )
        .await;
    assert_ne!(
        code, 0,
        "the planted file is visible from the other sandbox"
    );
    // The sandbox user owns its directory (the toolbox socket is its own).
    let (code, out) = agent
        .exec(&user, "touch /run/cove/mine && stat -c %U /run/cove")
        .await;
    assert_eq!((code, out.trim()), (0, "daytona"), "{out}");

    // The toolbox works in both (file API too).
    for id in [&root, &user] {
        let r = agent
            .get(id, "/files/info?path=/run/cove/env.sh")
            .send()
            .await
            .expect("info");
        assert_eq!(r.status(), 200, "{id}");
    }
}

/// A stopped agent leaves no mount behind (its data dir can be removed); a killed one's mount
/// is taken over by the next agent and released by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_mount() {
    let mounted = |dir: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(dir.to_str().expect("utf-8")))
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let sandboxes = tmp.path().join("sandboxes");
    let runner = sid("r");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove-runner"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--token",
                "t",
                "--runner-id",
                &runner,
            ])
            .arg("--data-dir")
            .arg(tmp.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("cove-runner");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("line");
        assert!(line.contains("listening"), "{line}");
        child
    };
    let mut first = start();
    assert!(mounted(&sandboxes));
    first.kill().expect("kill -9");
    first.wait().expect("wait");
    assert!(mounted(&sandboxes), "a killed agent cannot unmount");
    let second = start();
    let term = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let out = second.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(!mounted(&sandboxes), "the mount outlived the agent");
    std::fs::remove_dir(&sandboxes).expect("the data dir can be removed");
    common::remove_containers(&runner);
}
