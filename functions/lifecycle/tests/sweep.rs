//! The lifecycle sweep natively against dynoxide, with a stand-in runner agent over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use cove_api_types::ids::{SandboxId, UserId};
use cove_api_types::runner::RunnerState;
use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
use cove_edge::Env;
use cove_edge::config::JwtConfig;
use cove_runner_api::{Healthcheck, RunnerMetrics};
use cove_store::orgs::{OrgQuota, OrgRecord};
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord};

/// The sandbox the stand-in agent does not know.
const GONE: &str = "00000000-0000-4000-8000-00000000dead";
use serde_json::{Value, json};

async fn env() -> Env {
    Env {
        store: cove_testkit::store().await,
        jwt: JwtConfig::default(),
    }
}

fn hc(api_url: &str) -> Healthcheck {
    Healthcheck {
        domain: None,
        api_url: api_url.to_owned(),
        proxy_url: None,
        app_version: "t".into(),
        metrics: RunnerMetrics::default(),
        service_health: vec![],
        snapshots: vec![],
    }
}

fn no_settings() -> cove_snapshot_jobs::JobSettings {
    <cove_snapshot_jobs::JobSettings as cove_edge::config::Settings>::from_lookup(|_| None)
}

async fn sweep(env: &Env) -> Value {
    let req = http::Request::builder()
        .method("POST")
        .uri("/sweep")
        .body(Bytes::new())
        .unwrap();
    let resp = lifecycle::handle(env, &no_settings(), req).await;
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(resp.body()).unwrap()
}

/// A stand-in agent: every sandbox is `stopped`, except [`GONE`] (404).
async fn fake_agent() -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v1/sandboxes/{id}",
        get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
            if id == GONE {
                return (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(json!({"path": "/", "timestamp": "t", "statusCode": 404,
                        "error": "Not Found", "message": "no such sandbox", "source": "COVE_RUNNER"})),
                );
            }
            (
                axum::http::StatusCode::OK,
                axum::Json(json!({"id": id, "state": "stopped", "generation": 1})),
            )
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

fn quota() -> OrgQuota {
    OrgQuota {
        total_cpu_quota: 100,
        total_memory_quota: 100,
        total_disk_quota: 100,
        ..OrgQuota::default()
    }
}

#[tokio::test]
async fn lost_runner_makes_sandboxes_unknown_and_recovery_writes_the_real_state() {
    let env = env().await;
    let now = cove_api_types::time::now_rfc3339();
    let runner = RunnerRecord::new("r", "us", &now).unwrap();
    env.store.runners().create(&runner).await.unwrap();
    let old = cove_api_types::time::format_rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::seconds(30),
    );
    let agent = fake_agent().await;
    env.store
        .runners()
        .record_heartbeat(&runner.id, &hc(&agent), &old)
        .await
        .unwrap();
    let org = OrgRecord::new("o".into(), UserId::parse("u").unwrap(), false, now.clone());
    env.store.orgs().create(&org).await.unwrap();
    let mut ids = std::collections::HashMap::new();
    for (name, st) in [
        ("a", SandboxState::Started),
        ("b", SandboxState::Stopped),
        ("gone", SandboxState::Started),
    ] {
        let id = if name == "gone" {
            SandboxId::parse(GONE).unwrap()
        } else {
            SandboxId::new_random()
        };
        let mut sb = SandboxRecord::new(id.clone(), org.id.clone(), name, "img", &now);
        sb.runner_id = Some(runner.id.clone());
        let created = env.store.sandboxes().create(&sb, &quota()).await.unwrap();
        let mut next = created.clone();
        next.state = st;
        env.store
            .sandboxes()
            .update(&created, &next, QuotaCheck::Enforce(&quota()))
            .await
            .unwrap();
        ids.insert(name, id);
    }

    let r = sweep(&env).await;
    assert_eq!(r["runnersMarkedUnresponsive"], 1, "{r}");
    assert_eq!(r["sandboxesMarkedUnknown"], 2, "{r}");
    let st = |name: &'static str| {
        let env = env.clone();
        let id = ids[name].clone();
        async move { env.store.sandboxes().get(&id).await.unwrap().unwrap() }
    };
    assert_eq!(
        env.store
            .runners()
            .get(&runner.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        RunnerState::Unresponsive
    );
    assert_eq!(st("a").await.state, SandboxState::Unknown);
    assert_eq!(
        st("a").await.desired_state,
        SandboxDesiredState::Started,
        "desired state kept"
    );
    assert_eq!(
        st("b").await.state,
        SandboxState::Stopped,
        "stopped sandboxes stay stopped"
    );
    // Idempotent.
    let r = sweep(&env).await;
    assert_eq!(
        (
            r["runnersMarkedUnresponsive"].as_u64(),
            r["sandboxesMarkedUnknown"].as_u64()
        ),
        (Some(0), Some(0))
    );

    // The runner comes back: the agent's answer is written back.
    env.store
        .runners()
        .record_heartbeat(
            &runner.id,
            &hc(&agent),
            &cove_api_types::time::now_rfc3339(),
        )
        .await
        .unwrap();
    let r = sweep(&env).await;
    assert_eq!(r["sandboxesRecovered"], 2, "{r}");
    assert_eq!(st("a").await.state, SandboxState::Stopped);
    let gone = st("gone").await;
    assert_eq!(gone.state, SandboxState::Error);
    assert!(gone.error_reason.is_some());
    let r = sweep(&env).await;
    assert_eq!(r["sandboxesRecovered"], 0, "{r}");

    // The assigned counter is untouched by all of it.
    let out = env
        .store
        .raw_client()
        .get_item()
        .table_name(env.store.table())
        .key("pk", AttributeValue::S(format!("RUNNER#{}", runner.id)))
        .key("sk", AttributeValue::S("#META".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.item.unwrap()["assignedSandboxes"],
        AttributeValue::N("3".into())
    );
}

#[tokio::test]
async fn only_post_sweep_is_served() {
    let env = env().await;
    let req = http::Request::builder()
        .method("GET")
        .uri("/sweep")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        lifecycle::handle(&env, &no_settings(), req).await.status(),
        404
    );
    assert_eq!(sweep(&env).await["skipped"], 0);
}
