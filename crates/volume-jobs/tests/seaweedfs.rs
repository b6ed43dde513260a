//! Volumes against SeaweedFS (`weed mini`, started here) with two Docker runner agents:
//!
//! - the sweep provisions a volume's storage (marker with its ids) and later empties it;
//! - a sandbox on runner 1 passes the POSIX suite on the mounted volume; a sandbox on runner 2
//!   reads the same bytes (1 MiB random file, SQLite database);
//! - runner 1's agent killed with -9 and restarted: the running sandbox's volume still reads and
//!   writes, and the volume is still mounted once;
//! - destroying the sandboxes releases the mounts.
//!
//! And the runner agent's build-context fetch on the same S3: a fetched context is tagged
//! `cove-kind=build-context` (the tag `infra/terraform`'s rule `stale-build-contexts` expires by).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use cove_api_types::volumes::VolumeState;
use cove_runner_api::{SandboxState, VolumeMount};
use cove_store::volumes::VolumeRecord;
use cove_testkit::{Agent, AgentOptions, Harness};
use cove_volume_jobs::VolumeStorage;
use cove_volume_jobs::s3::Bucket;
use support::{MountGuard, Weed, mounts_under, rclone_pids, suite_command, suite_ok};

const MOUNT: &str = "/home/daytona/vol";

fn agent(weed: &Weed) -> Agent {
    Agent::start(AgentOptions::docker().s3(&weed.url, "cove", "cove", "cove-secret")).unwrap()
}

async fn sandbox(a: &Agent, id: &str, volume: &str) {
    let st = a
        .sandbox(id, |s| {
            s.volumes.push(VolumeMount {
                volume_id: volume.to_owned(),
                mount_path: MOUNT.into(),
                subpath: None,
                read_only: false,
            });
        })
        .await
        .unwrap();
    assert_eq!(st.state, SandboxState::Started, "{st:?}");
}

fn mount_dir(a: &Agent, volume: &str) -> String {
    format!("/run/cove-volumes/{}/{volume}", a.runner_id())
}

/// Runs `cmd` in sandbox `id` until it exits 0 (uploads after close are asynchronous).
async fn eventually(a: &Agent, id: &str, cmd: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out) = a.exec(id, cmd).await;
        if code == 0 {
            return out;
        }
        assert!(Instant::now() < deadline, "{cmd}: {code} {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn provisioned(h: &Harness, storage: &VolumeStorage) -> VolumeRecord {
    let org = h.personal_org("weed-owner").await;
    let now = cove_api_types::time::now_rfc3339();
    let rec = h
        .env
        .store
        .volumes()
        .create(&VolumeRecord::new(org, "w", &now))
        .await
        .unwrap();
    let r = cove_volume_jobs::sweep(&h.env.store, storage, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(r.ready, 1, "{r:?}");
    let listed = Bucket { storage }.list("volumes/", 100).await.unwrap();
    assert!(
        listed.contains(&cove_runner_api::volume_marker(rec.id.as_str())),
        "{listed:?}"
    );
    h.env.store.volumes().get(&rec.id).await.unwrap().unwrap()
}

/// A create that fails after its volume was mounted (its user does not exist in the image) leaves
/// no mount and no rclone behind once the sandbox is gone.
async fn failed_create_leaves_nothing_mounted(a: &Agent, vid: &str) {
    let created = a
        .sandbox("sbw-bad", |s| {
            s.os_user = Some("no-such-user".into());
            s.volumes.push(VolumeMount {
                volume_id: vid.to_owned(),
                mount_path: MOUNT.into(),
                subpath: None,
                read_only: false,
            });
        })
        .await;
    eprintln!("failed create: {created:?}");
    if let Ok(st) = &created {
        assert_eq!(st.state, SandboxState::Error, "{st:?}");
        a.client().destroy_sandbox("sbw-bad").await.unwrap();
    }
    assert!(mounts_under(&mount_dir(a, vid)).is_empty(), "mount left");
    assert!(rclone_pids(vid).is_empty(), "rclone left");
}

#[tokio::test(flavor = "multi_thread")]
async fn seaweedfs_two_runners_and_an_agent_killed() {
    let weed = Weed::start();
    let storage = VolumeStorage {
        endpoint: weed.url.clone(),
        bucket: "cove".into(),
        region: "us-east-1".into(),
        access_key_id: "cove".into(),
        secret_access_key: "cove-secret".into(),
    };
    let h = Harness::new().await;
    let vol = provisioned(&h, &storage).await;
    let vid = vol.id.to_string();

    let a1 = agent(&weed);
    let a2 = agent(&weed);
    let _unmount = MountGuard(
        [&a1, &a2]
            .map(|a| format!("/run/cove-volumes/{}/", a.runner_id()))
            .into(),
    );
    sandbox(&a1, "sbw1", &vid).await;
    let (code, out) = a1.exec("sbw1", &suite_command(MOUNT, "write", None)).await;
    let sha = suite_ok(code, &out)["sha"].as_str().unwrap().to_owned();

    // Runner 2 reads what runner 1 wrote, byte for byte.
    sandbox(&a2, "sbw2", &vid).await;
    let read = suite_command(MOUNT, "read", Some(&sha));
    let out = eventually(&a2, "sbw2", &read).await;
    suite_ok(0, &out);

    // kill -9 of runner 1's agent: the sandbox's volume goes on serving, also after the restart.
    let a1 = a1.kill().restart(|_| {}).unwrap();
    assert_eq!(mounts_under(&mount_dir(&a1, &vid)).len(), 1);
    let (code, out) = a1
        .exec(
            "sbw1",
            &format!("echo after > {MOUNT}/after.txt && cat {MOUNT}/r2.txt"),
        )
        .await;
    assert_eq!((code, out.trim()), (0, "renamed"));
    let out = eventually(&a2, "sbw2", &format!("cat {MOUNT}/after.txt")).await;
    assert_eq!(out.trim(), "after");

    // Destroying the last user releases each host's mount.
    for (a, id) in [(&a1, "sbw1"), (&a2, "sbw2")] {
        a.client().destroy_sandbox(id).await.unwrap();
        assert!(
            mounts_under(&mount_dir(a, &vid)).is_empty(),
            "{id}: still mounted"
        );
    }

    // A sandbox created after the volume's last user on the host was destroyed mounts it afresh
    // (the old rclone is gone) and sees every file.
    assert!(
        rclone_pids(&vid).is_empty(),
        "rclone still runs after release"
    );
    sandbox(&a1, "sbw3", &vid).await;
    let out = eventually(&a1, "sbw3", &format!("cat {MOUNT}/after.txt")).await;
    assert_eq!(out.trim(), "after");
    suite_ok(0, &eventually(&a1, "sbw3", &read).await);
    assert_eq!(rclone_pids(&vid).len(), 1);
    a1.client().destroy_sandbox("sbw3").await.unwrap();
    assert!(mounts_under(&mount_dir(&a1, &vid)).is_empty());
    assert!(
        rclone_pids(&vid).is_empty(),
        "rclone still runs after release"
    );

    failed_create_leaves_nothing_mounted(&a1, &vid).await;

    // Deletion through the sweep empties the prefix and removes the marker.
    let repo = h.env.store.volumes();
    repo.set_state(&vol.id, vol.version, VolumeState::PendingDelete, None)
        .await
        .unwrap();
    for _ in 0..5 {
        cove_volume_jobs::sweep(&h.env.store, &storage, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    let rec = repo.get(&vol.id).await.unwrap().unwrap();
    assert_eq!(rec.state, VolumeState::Deleted);
    let left = Bucket { storage: &storage }
        .list("volumes/", 100)
        .await
        .unwrap();
    assert!(left.iter().all(|k| !k.contains(&vid)), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetched_build_context_is_tagged_for_expiry() {
    use cove_runner_agent::snapshots::context::{CONTEXT_TAG, ContextStore, S3Settings};
    let weed = Weed::start();
    let settings = S3Settings {
        endpoint: Some(weed.url.clone()),
        bucket: "cove".into(),
        region: "us-east-1".into(),
    };
    let creds = aws_credential_types::Credentials::new("cove", "cove-secret", None, None, "test");
    let cfg = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds.clone())
        .endpoint_url(&weed.url)
        .force_path_style(true)
        .http_client(cove_runner_agent::snapshots::context::https_client())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(cfg);
    let (used, unused) = ("org-a/aaaa/context.tar", "org-a/bbbb/context.tar");
    for key in [used, unused] {
        s3.put_object()
            .bucket("cove")
            .key(key)
            .body(b"not really a tar".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let tags = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let out = s3
                .get_object_tagging()
                .bucket("cove")
                .key(key)
                .send()
                .await
                .unwrap();
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    assert!(tags(used).await.is_empty(), "untagged before the build");

    let store = ContextStore::new(&settings, Some(creds));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("ctx.tar");
    store.fetch("org-a", "aaaa", &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"not really a tar");
    assert_eq!(
        tags(used).await,
        vec![(CONTEXT_TAG.0.to_owned(), CONTEXT_TAG.1.to_owned())]
    );
    assert!(tags(unused).await.is_empty(), "only the fetched context");
    // A missing context is an error, not a tag on nothing.
    let err = store.fetch("org-a", "cccc", &dest).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}
