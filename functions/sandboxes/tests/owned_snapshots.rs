//! Snapshots belong to organizations (issue 9 item 1), end to end on the real Docker agent: a
//! sandbox is created from the default snapshot (or, restored, from its own backup) only. Org B
//! naming org A's backup image, or a bare local image tag on the runner, gets "snapshot not
//! found" exactly like a name that exists nowhere; A's backups leave the runner with A's sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use cove_edge::config::SandboxSettings;
use cove_testkit::api::{Call, Reply};
use cove_testkit::{AgentOptions, Harness};
use serde_json::{Value, json};

struct Fx {
    h: Harness,
    settings: SandboxSettings,
}

impl Fx {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|v| v.to_string());
        let call = Call::simple(method, path, Some(token), None, body.as_deref())
            .header("host", "localhost:3000");
        let resp = sandboxes::handle(&self.h.env, &self.settings, call.to_request()).await;
        let reply = Reply::from_response(resp);
        (reply.status, reply.json())
    }
}

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).0
}

#[tokio::test]
async fn another_organizations_backup_or_a_local_tag_is_not_a_snapshot() {
    let h = Harness::with_runner(AgentOptions::docker()).await.unwrap();
    let settings = SandboxSettings {
        default_snapshot: cove_testkit::image::base().unwrap(),
        ..SandboxSettings::default()
    };
    let f = Fx { h, settings };
    let (alice, bob) = (f.h.jwt("alice"), f.h.jwt("bob"));
    let agent = f.h.agent().unwrap();

    // Org A: a sandbox holding a secret, backed up.
    let (s, sb) = f
        .call("POST", "/api/sandbox", &alice, Some(json!({})))
        .await;
    assert_eq!((s, sb["state"].as_str()), (200, Some("started")), "{sb}");
    let id = sb["id"].as_str().unwrap().to_owned();
    let (code, _) = agent
        .exec(&id, "sh -c 'echo s3cret > /home/daytona/secret.txt'")
        .await;
    assert_eq!(code, 0);
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/backup"), &alice, None)
        .await;
    assert_eq!(
        (s, v["backupState"].as_str()),
        (200, Some("Completed")),
        "{v}"
    );
    let sid = cove_api_types::ids::SandboxId::parse(&id).unwrap();
    let rec = f.h.env.store.sandboxes().get(&sid).await.unwrap().unwrap();
    let backup = rec
        .backup_snapshot
        .clone()
        .expect("the agent's backup image is recorded");
    assert!(
        backup.starts_with("cove-backup/"),
        "named by the agent: {backup}"
    );
    assert_eq!(
        rec.backup_runner_id.as_ref(),
        Some(&f.h.runner().unwrap().id)
    );
    assert!(image_exists(&backup), "{backup} is on the runner");

    // Org B knows the tag (and a local tag the runner has): neither is a snapshot of B's.
    let evil = format!("evil-{}:latest", &id[..8]);
    assert!(docker(&["tag", &f.settings.default_snapshot, &evil]).0);
    let never = "nowhere/at-all:1";
    let mut answers = Vec::new();
    for image in [backup.as_str(), evil.as_str(), never] {
        let (s, v) = f
            .call(
                "POST",
                "/api/sandbox",
                &bob,
                Some(json!({"snapshot": image})),
            )
            .await;
        assert_eq!(s, 400, "{image}: {v}");
        assert_eq!(v["message"], format!("Snapshot {image} not found"), "{v}");
        answers.push((s, v["message"].as_str().unwrap().replace(image, "<image>")));
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "identical answers: {answers:?}"
    );
    let (s, list) = f.call("GET", "/api/sandbox", &bob, None).await;
    assert_eq!(
        (s, list["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );
    let b_org = f.h.personal_org("bob").await;
    let usage = f.h.env.store.sandboxes().usage(&b_org).await.unwrap();
    assert_eq!((usage.cpu, usage.memory, usage.disk), (0, 0, 0));

    // A's own backup still restores (archive, start) with the secret inside.
    assert_eq!(
        f.call("POST", &format!("/api/sandbox/{id}/stop"), &alice, None)
            .await
            .0,
        200
    );
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/archive"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("archived")), "{v}");
    let archived = f.h.env.store.sandboxes().get(&sid).await.unwrap().unwrap();
    let archive_image = archived.backup_snapshot.clone().unwrap();
    assert!(
        !image_exists(&backup),
        "the older backup went when the new one succeeded"
    );
    let (s, v) = f
        .call("POST", &format!("/api/sandbox/{id}/start"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("started")), "{v}");
    let (code, out) = agent.exec(&id, "cat /home/daytona/secret.txt").await;
    assert_eq!((code, out.trim()), (0, "s3cret"));

    // A's sandbox goes, and its backups with it.
    let (s, v) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("destroyed")), "{v}");
    assert!(
        !image_exists(&archive_image),
        "{archive_image} removed with the sandbox"
    );
    let (_, left) = docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=cove.backup.sandbox={id}"),
    ]);
    assert!(left.is_empty(), "no backup of {id} left: {left}");
    let gone = f.h.env.store.sandboxes().get(&sid).await.unwrap().unwrap();
    assert_eq!(gone.backup_runner_id, None, "nothing left for the sweep");
    assert!(
        f.h.env
            .store
            .sandboxes()
            .list_backup_removals()
            .await
            .unwrap()
            .is_empty()
    );
    docker(&["rmi", &evil]);
}
