//! Backups against the real Docker engine: agent-picked unguessable names with owner labels,
//! superseded backups removed, `DELETE /v1/backups/{id}`, restores from another sandbox's or
//! organization's backup refused, snapshot lists without backups or stray tags, exactly one
//! toolbox daemon after three backup → restore cycles, and backups pushed to a registry (one per
//! key, in the sandbox's organization's project only) that a runner without them restores.

use crate::common;
use crate::support;

use std::process::Command;

use common::{Agent, sid};
use cove_runner_api::{BackupRequest, PushTarget, SandboxSpec, SandboxState};
use support::Registry;

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("docker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", image]).0
}

fn label(image: &str, key: &str) -> String {
    docker(&[
        "image",
        "inspect",
        "-f",
        &format!("{{{{index .Config.Labels \"{key}\"}}}}"),
        image,
    ])
    .1
}

fn restore_spec(image: &str, org: &str) -> SandboxSpec {
    let mut s = SandboxSpec::new(image);
    s.org_id = Some(org.into());
    s
}

/// Removes the images a test made, whatever happens.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_private_superseded_and_deleted() {
    let image = common::image();
    let agent = Agent::start(&["--snapshot", &image]);
    let mut made = Images(Vec::new());
    let a = sid("bk");
    agent.sandbox(&a, |s| s.org_id = Some("org-a".into())).await;
    let (code, _) = agent.exec(&a, "echo secret-of-a > ~/secret").await;
    assert_eq!(code, 0);

    let b1 = agent.client.backup(&a).await.expect("backup 1");
    let b2 = agent.client.backup(&a).await.expect("backup 2");
    made.0.extend([b1.image.clone(), b2.image.clone()]);
    assert_ne!(b1.image, b2.image);
    for b in [&b1, &b2] {
        // cove-backup/<32 hex>:<ms>: nothing derived from the sandbox id.
        let (repo, tag) = b.image.rsplit_once(':').expect("repo:tag");
        let random = repo.strip_prefix("cove-backup/").expect("backup repo");
        assert_eq!(random.len(), 32, "{}", b.image);
        assert!(random.bytes().all(|c| c.is_ascii_hexdigit()), "{}", b.image);
        assert!(tag.parse::<u64>().is_ok(), "{}", b.image);
        assert!(!b.image.contains(&a));
    }
    assert_eq!(label(&b2.image, "cove.backup.sandbox"), a);
    assert_eq!(label(&b2.image, "cove.backup.org"), "org-a");
    assert_eq!(label(&b2.image, "cove.runner"), agent.runner_id);
    assert!(!image_exists(&b1.image), "the superseded backup is removed");
    assert!(image_exists(&b2.image));

    // Another organization, or another sandbox of the same one, may not restore it.
    let thief = sid("thief");
    for (id, org) in [(&thief, "org-b"), (&thief, "org-a")] {
        let err = agent
            .client
            .put_sandbox(id, &restore_spec(&b2.image, org))
            .await
            .expect_err("foreign restore");
        assert_eq!(err.status(), Some(403), "{id} {org}: {err}");
    }
    assert!(
        agent.client.get_sandbox(&thief).await.is_err(),
        "no half-made sandbox"
    );

    // Snapshot lists: the configured image and `cove.snapshot`-labelled images only.
    let stray = format!("cove-stray-{}:x", &sid("t")[2..]);
    assert!(docker(&["tag", &image, &stray]).0);
    let labelled = format!("cove-labelled-{}:1", &sid("t")[2..]);
    let cid = agent
        .client
        .get_sandbox(&a)
        .await
        .expect("status")
        .container_id
        .expect("cid");
    assert!(
        docker(&[
            "commit",
            "--change",
            "LABEL cove.snapshot=python",
            &cid,
            &labelled
        ])
        .0
    );
    made.0.extend([stray.clone(), labelled.clone()]);
    let info = agent.client.info().await.expect("info");
    assert!(info.snapshots.contains(&image), "{:?}", info.snapshots);
    assert!(info.snapshots.contains(&labelled), "{:?}", info.snapshots);
    assert!(!info.snapshots.contains(&stray), "{:?}", info.snapshots);
    assert!(
        info.snapshots
            .iter()
            .all(|s| !s.starts_with("cove-backup/")),
        "{:?}",
        info.snapshots
    );

    // Archive keeps the backup; another organization cannot take over the id; the owner
    // restores it with its files.
    agent.client.destroy_sandbox(&a).await.expect("archive");
    assert!(image_exists(&b2.image));
    let err = agent
        .client
        .put_sandbox(&a, &restore_spec(&b2.image, "org-b"))
        .await
        .expect_err("other organization");
    assert_eq!(err.status(), Some(403));
    let s = agent
        .client
        .put_sandbox(&a, &restore_spec(&b2.image, "org-a"))
        .await
        .expect("restore");
    assert_eq!(s.state, SandboxState::Started);
    assert_eq!(agent.exec(&a, "cat ~/secret").await.1, "secret-of-a\n");

    // Deleting the backups: the one in use waits for its container.
    let removal = agent.client.delete_backups(&a).await.expect("delete");
    assert_eq!(removal.deferred, vec![b2.image.clone()]);
    assert!(image_exists(&b2.image));
    agent.client.destroy_sandbox(&a).await.expect("destroy");
    assert!(!image_exists(&b2.image), "removed with its last container");
}

/// Counts processes whose program is the toolbox daemon.
const COUNT_DAEMONS: &str = "n=0; for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); case \"$c\" in /usr/local/bin/cove-toolbox*) n=$((n+1));; esac; done; echo $n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_sandboxes_run_one_daemon() {
    let agent = Agent::start(&[]);
    let mut made = Images(Vec::new());
    let id = sid("cycle");
    agent
        .sandbox(&id, |s| s.org_id = Some("org-c".into()))
        .await;
    assert_eq!(agent.exec(&id, COUNT_DAEMONS).await.1, "1\n");
    for round in 1..=3 {
        agent.exec(&id, &format!("echo {round} >> ~/rounds")).await;
        let b = agent.client.backup(&id).await.expect("backup");
        made.0.push(b.image.clone());
        agent.client.destroy_sandbox(&id).await.expect("archive");
        let s = agent
            .client
            .put_sandbox(&id, &restore_spec(&b.image, "org-c"))
            .await
            .expect("restore");
        assert_eq!(s.state, SandboxState::Started);
        assert_eq!(
            agent.exec(&id, COUNT_DAEMONS).await.1,
            "1\n",
            "round {round}"
        );
    }
    assert_eq!(agent.exec(&id, "cat ~/rounds").await.1, "1\n2\n3\n");
    agent.client.destroy_sandbox(&id).await.expect("destroy");
    agent
        .client
        .delete_backups(&id)
        .await
        .expect("delete backups");
}

/// The tags of `repo` in `reg` (none when it has none).
async fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let mut req = reqwest::Client::new().get(format!("http://{}/v2/{repo}/tags/list", reg.addr));
    if let Some(a) = &reg.auth {
        req = req.basic_auth(&a.username, Some(&a.password));
    }
    let resp = req.send().await.expect("tags/list");
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let v: serde_json::Value = resp.json().await.expect("json");
    let mut out: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_backups_are_one_per_key_stay_in_their_project_and_restore_from_the_registry() {
    let reg = Registry::start(Some(("cove-internal", "internal-pw")));
    let agent = Agent::start(&[]);
    let mut made = Images(Vec::new());
    let org = uuid::Uuid::new_v4().to_string();
    let id = sid("push");
    agent.sandbox(&id, |s| s.org_id = Some(org.clone())).await;
    agent.exec(&id, "echo pushed-state > ~/pushed").await;
    let target = PushTarget {
        registry: reg.addr.clone(),
        project: format!("cove-{org}"),
        auth: reg.auth.clone(),
    };
    let repo = format!("cove-{org}/backup-{id}");
    let req = |key: &str| BackupRequest {
        key: key.into(),
        push: Some(target.clone()),
        ..BackupRequest::default()
    };

    // Two requests with one key at once (a retried transition): one backup, one answer.
    let k1 = req("k1");
    let (b1, b2) = tokio::join!(
        agent.client.backup_sandbox(&id, &k1),
        agent.client.backup_sandbox(&id, &k1)
    );
    let (b1, b2) = (b1.expect("backup"), b2.expect("same backup"));
    made.0.push(b1.image.clone());
    assert_eq!(b1, b2);
    let prefix = format!("{}/{repo}:", reg.addr);
    let tag1 = b1
        .image
        .strip_prefix(&prefix)
        .expect("pushed ref")
        .to_owned();
    assert!(tag1.parse::<u64>().is_ok(), "{}", b1.image);
    assert_eq!(tags(&reg, &repo).await, vec![tag1.clone()]);
    // Asked again after it ended: the same answer, nothing new.
    let again = agent
        .client
        .backup_sandbox(&id, &req("k1"))
        .await
        .expect("again");
    assert_eq!(again, b1);
    assert_eq!(tags(&reg, &repo).await, vec![tag1.clone()]);
    // A new key: a new backup; the superseded one leaves the runner (the registry keeps it).
    let b3 = agent
        .client
        .backup_sandbox(&id, &req("k2"))
        .await
        .expect("k2");
    made.0.push(b3.image.clone());
    assert_ne!(b3.image, b1.image);
    assert_eq!(tags(&reg, &repo).await.len(), 2);
    assert!(
        !image_exists(&b1.image),
        "the superseded backup is removed locally"
    );
    assert!(image_exists(&b3.image));

    // Another organization's project: refused, nothing pushed there.
    let other = format!("cove-{}", uuid::Uuid::new_v4());
    let mut foreign = req("k3");
    foreign.push.as_mut().expect("push").project = other.clone();
    let err = agent
        .client
        .backup_sandbox(&id, &foreign)
        .await
        .expect_err("foreign project");
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(tags(&reg, &format!("{other}/backup-{id}")).await.is_empty());
    // A wrong password: the push fails with 502, the sandbox keeps running.
    let mut wrong = req("k4");
    wrong
        .push
        .as_mut()
        .expect("push")
        .auth
        .as_mut()
        .expect("auth")
        .password = "nope".into();
    let err = agent
        .client
        .backup_sandbox(&id, &wrong)
        .await
        .expect_err("wrong password");
    assert_eq!(err.status(), Some(502), "{err}");
    assert_eq!(agent.exec(&id, "cat ~/pushed").await.1, "pushed-state\n");

    // Archived, and no local copy left: the restore pulls the backup from the registry.
    agent.client.destroy_sandbox(&id).await.expect("archive");
    agent
        .client
        .delete_backups(&id)
        .await
        .expect("local backups");
    let _ = Command::new("docker")
        .args(["rmi", "-f", &b3.image])
        .output();
    assert!(!image_exists(&b3.image), "no local copy");
    let mut spec = restore_spec(&b3.image, &org);
    spec.image_auth = reg.auth.clone();
    let s = agent.client.put_sandbox(&id, &spec).await.expect("restore");
    assert_eq!(s.state, SandboxState::Started, "{s:?}");
    assert_eq!(agent.exec(&id, "cat ~/pushed").await.1, "pushed-state\n");
    assert_eq!(agent.exec(&id, COUNT_DAEMONS).await.1, "1\n");
    agent.client.destroy_sandbox(&id).await.expect("destroy");
    agent
        .client
        .delete_backups(&id)
        .await
        .expect("delete backups");
}
