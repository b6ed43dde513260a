//! Runners in the table (dynoxide by default, DynamoDB Local when `COVE_TEST_DYNAMODB_ENDPOINT` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use cove_api_types::ids::RunnerId;
use cove_api_types::runner::RunnerState;
use cove_runner_api::{Healthcheck, RunnerMetrics};
use cove_store::runners::{RunnerRecord, token_hash};
use cove_store::{Conflict, StoreError};

fn now() -> String {
    cove_api_types::time::now_rfc3339()
}

fn hc(api_url: &str, snapshots: &[&str]) -> Healthcheck {
    Healthcheck {
        domain: None,
        api_url: api_url.to_owned(),
        proxy_url: None,
        app_version: "0.1.0".into(),
        metrics: RunnerMetrics {
            cpu: 8,
            memory_gib: 16.0,
            disk_gib: 100.0,
            current_started_sandboxes: 3,
            ..Default::default()
        },
        service_health: vec![],
        snapshots: snapshots.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn key(id: &RunnerId) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("RUNNER#{id}"))),
        ("sk".to_owned(), AttributeValue::S("#META".to_owned())),
    ])
}

/// What the sandbox repository's transactions do to a runner.
async fn add_assigned(store: &cove_store::Store, id: &RunnerId, n: i64) {
    store
        .raw_client()
        .update_item()
        .table_name(store.table())
        .set_key(Some(key(id)))
        .update_expression("ADD assignedSandboxes :n")
        .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn create_get_by_id_and_by_token_and_list() {
    let store = cove_testkit::store().await;
    let rec = RunnerRecord::new("r1", "us", &now()).unwrap();
    let created = store.runners().create(&rec).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.state, RunnerState::Initializing);

    let got = store.runners().get(&rec.id).await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(got.api_key.len(), 64);
    let by_key = store
        .runners()
        .get_by_api_key(&rec.api_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_key.id, rec.id);
    assert!(
        store
            .runners()
            .get_by_api_key(&"0".repeat(64))
            .await
            .unwrap()
            .is_none()
    );
    let nope = RunnerId::new_random();
    assert!(store.runners().get(&nope).await.unwrap().is_none());

    // The pointer row is keyed by the token's hash, never the token.
    let keys = store.scan_keys().await.unwrap();
    assert!(keys.contains(&(
        format!("RUNNERKEY#{}", token_hash(&rec.api_key)),
        "#META".into()
    )));
    assert!(!keys.iter().any(|(pk, _)| pk.contains(&rec.api_key)));

    // Same id again: conflict, nothing half-written.
    let mut dup = RunnerRecord::new("r1b", "us", &now()).unwrap();
    dup.id = rec.id.clone();
    assert!(matches!(
        store.runners().create(&dup).await,
        Err(StoreError::Conflict {
            conflict: Conflict::Exists,
            ..
        })
    ));
    assert!(
        store
            .runners()
            .get_by_api_key(&dup.api_key)
            .await
            .unwrap()
            .is_none()
    );

    let rec2 = RunnerRecord::new("r2", "eu", &now()).unwrap();
    store.runners().create(&rec2).await.unwrap();
    let mut ids: Vec<RunnerId> = store
        .runners()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    let mut want = vec![rec.id.clone(), rec2.id.clone()];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn heartbeat_sets_its_fields_and_keeps_assigned_sandboxes() {
    let store = cove_testkit::store().await;
    let rec = RunnerRecord::new("r1", "us", &now()).unwrap();
    store.runners().create(&rec).await.unwrap();
    add_assigned(&store, &rec.id, 3).await;

    let t = now();
    store
        .runners()
        .record_heartbeat(
            &rec.id,
            &hc("http://127.0.0.1:3003", &["img:1", "img:2"]),
            &t,
        )
        .await
        .unwrap();
    let got = store.runners().get(&rec.id).await.unwrap().unwrap();
    assert_eq!(
        got.assigned_sandboxes, 3,
        "heartbeat must not clobber the counter"
    );
    assert_eq!(got.state, RunnerState::Ready);
    assert_eq!(got.api_url.as_deref(), Some("http://127.0.0.1:3003"));
    assert_eq!(got.snapshots, vec!["img:1", "img:2"]);
    assert_eq!(got.last_checked.as_deref(), Some(t.as_str()));
    assert_eq!(got.cpu, 8.0);
    assert_eq!(got.memory_gib, 16.0);
    assert_eq!(got.metrics.as_ref().unwrap().current_started_sandboxes, 3);
    assert_eq!(got.api_key, rec.api_key);

    // A sandbox lands between two heartbeats: still counted after the next one.
    add_assigned(&store, &rec.id, 1).await;
    store
        .runners()
        .record_heartbeat(&rec.id, &hc("http://127.0.0.1:3004", &[]), &now())
        .await
        .unwrap();
    let got = store.runners().get(&rec.id).await.unwrap().unwrap();
    assert_eq!(got.assigned_sandboxes, 4);
    assert_eq!(got.api_url.as_deref(), Some("http://127.0.0.1:3004"));
    assert!(got.snapshots.is_empty());

    // Unknown runner.
    assert!(matches!(
        store
            .runners()
            .record_heartbeat(&RunnerId::new_random(), &hc("http://x", &[]), &now())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn heartbeat_revives_unresponsive_but_not_disabled_runners() {
    let store = cove_testkit::store().await;
    let rec = RunnerRecord::new("r1", "us", &now()).unwrap();
    store.runners().create(&rec).await.unwrap();
    let t0 = "2026-01-01T00:00:00.000Z";
    store
        .runners()
        .record_heartbeat(&rec.id, &hc("http://a", &[]), t0)
        .await
        .unwrap();

    // The sweep only wins against the heartbeat it saw.
    assert!(
        !store
            .runners()
            .mark_unresponsive(&rec.id, RunnerState::Ready, "2025-01-01T00:00:00.000Z")
            .await
            .unwrap()
    );
    assert!(
        store
            .runners()
            .mark_unresponsive(&rec.id, RunnerState::Ready, t0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .runners()
            .mark_unresponsive(&rec.id, RunnerState::Ready, t0)
            .await
            .unwrap(),
        "idempotent"
    );
    let got = store.runners().get(&rec.id).await.unwrap().unwrap();
    assert_eq!(got.state, RunnerState::Unresponsive);

    store
        .runners()
        .record_heartbeat(&rec.id, &hc("http://a", &[]), &now())
        .await
        .unwrap();
    assert_eq!(
        store.runners().get(&rec.id).await.unwrap().unwrap().state,
        RunnerState::Ready
    );

    store
        .runners()
        .set_state(&rec.id, RunnerState::Disabled)
        .await
        .unwrap();
    store
        .runners()
        .record_heartbeat(&rec.id, &hc("http://b", &[]), &now())
        .await
        .unwrap();
    let got = store.runners().get(&rec.id).await.unwrap().unwrap();
    assert_eq!(got.state, RunnerState::Disabled);
    assert_eq!(got.api_url.as_deref(), Some("http://b"));
    assert!(matches!(
        store
            .runners()
            .set_state(&RunnerId::new_random(), RunnerState::Ready)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn scheduling_flags_and_delete() {
    let store = cove_testkit::store().await;
    let rec = RunnerRecord::new("r1", "us", &now()).unwrap();
    store.runners().create(&rec).await.unwrap();
    add_assigned(&store, &rec.id, 2).await;

    let r = store
        .runners()
        .set_unschedulable(&rec.id, true)
        .await
        .unwrap();
    assert!(r.unschedulable);
    assert_eq!(r.assigned_sandboxes, 2);
    let r = store.runners().set_draining(&rec.id, true).await.unwrap();
    assert!(r.draining && r.unschedulable);
    let r = store
        .runners()
        .set_unschedulable(&rec.id, false)
        .await
        .unwrap();
    assert!(!r.unschedulable);
    assert!(matches!(
        store
            .runners()
            .set_unschedulable(&RunnerId::new_random(), true)
            .await,
        Err(StoreError::NotFound { .. })
    ));

    // Sandboxes still assigned: refused without force.
    assert!(matches!(
        store.runners().delete(&rec.id, false).await,
        Err(StoreError::Conflict {
            conflict: Conflict::RunnerHasSandboxes,
            ..
        })
    ));
    add_assigned(&store, &rec.id, -2).await;
    store.runners().delete(&rec.id, false).await.unwrap();
    assert!(store.runners().get(&rec.id).await.unwrap().is_none());
    assert!(
        store
            .runners()
            .get_by_api_key(&rec.api_key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.runners().delete(&rec.id, false).await,
        Err(StoreError::NotFound { .. })
    ));

    let busy = RunnerRecord::new("busy", "us", &now()).unwrap();
    store.runners().create(&busy).await.unwrap();
    add_assigned(&store, &busy.id, 5).await;
    store.runners().delete(&busy.id, true).await.unwrap();
    assert!(store.scan_keys().await.unwrap().is_empty());
}
