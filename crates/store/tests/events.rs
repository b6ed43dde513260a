//! The sandboxes' event outbox against a real DynamoDB API: one event per committed create or
//! `state`/`desiredState` change, written in the same transaction, read in order per organization.

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use cove_api_types::ids::{OrganizationId, SandboxId, UserId};
use cove_api_types::sandbox::{SandboxDesiredState, SandboxState};
use cove_store::orgs::{OrgQuota, OrgRecord};
use cove_store::sandboxes::events::{EVENT_TTL, time_cursor};
use cove_store::sandboxes::{QuotaCheck, SandboxEventKind, SandboxRecord, generate_auth_token};
use cove_store::{Conflict, Store, StoreError};

async fn new_org(store: &Store) -> OrganizationId {
    let rec = OrgRecord::new(
        "Org".into(),
        UserId::parse("owner").unwrap(),
        false,
        cove_api_types::time::now_rfc3339(),
    );
    store.orgs().create(&rec).await.unwrap();
    rec.id
}

fn sandbox(org: &OrganizationId, name: &str) -> SandboxRecord {
    let now = cove_api_types::time::now_rfc3339();
    let mut r = SandboxRecord::new(
        SandboxId::new_random(),
        org.clone(),
        name,
        "cove-sandbox-base:latest",
        &now,
    );
    r.auth_token = generate_auth_token().unwrap();
    r
}

const START: &str = "0000000000000";

#[tokio::test]
async fn writes_carry_their_events_in_order() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let (org, other) = (new_org(&store).await, new_org(&store).await);
    let before = time::OffsetDateTime::now_utc();
    let created = repo
        .create(&sandbox(&org, "ev"), &OrgQuota::default())
        .await
        .unwrap();

    let evs = repo.events_after(&org, START, 100).await.unwrap();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].kinds, vec![SandboxEventKind::Created]);
    assert_eq!(evs[0].sandbox_id, created.id);
    assert_eq!((evs[0].old_state, evs[0].new_state), (None, created.state));
    let ttl_from = (before + EVENT_TTL).unix_timestamp();
    assert!(
        (ttl_from..ttl_from + 60).contains(&evs[0].ttl),
        "TTL about an hour ahead: {} vs {ttl_from}",
        evs[0].ttl
    );

    // Only activity moves: no event.
    let mut idle = created.clone();
    idle.last_activity_at = cove_api_types::time::now_rfc3339();
    let idle = repo
        .update(&created, &idle, QuotaCheck::Record)
        .await
        .unwrap();
    repo.touch_activity(&created.id, "9999-12-31T00:00:00Z", "9999-12-31T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(repo.events_after(&org, START, 100).await.unwrap().len(), 1);

    // State and desired state in one write: one item, both events.
    let mut stopping = idle.clone();
    stopping.state = SandboxState::Stopping;
    stopping.desired_state = SandboxDesiredState::Stopped;
    let stopping = repo
        .update(&idle, &stopping, QuotaCheck::Record)
        .await
        .unwrap();
    // State only.
    let mut stopped = stopping.clone();
    stopped.state = SandboxState::Stopped;
    let stopped = repo
        .update(&stopping, &stopped, QuotaCheck::Record)
        .await
        .unwrap();

    let evs = repo.events_after(&org, START, 100).await.unwrap();
    let kinds: Vec<_> = evs.iter().map(|e| e.kinds.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            vec![SandboxEventKind::Created],
            vec![
                SandboxEventKind::StateUpdated,
                SandboxEventKind::DesiredStateUpdated
            ],
            vec![SandboxEventKind::StateUpdated],
        ]
    );
    assert_eq!(
        (evs[1].old_state, evs[1].new_state),
        (Some(created.state), SandboxState::Stopping)
    );
    assert_eq!(
        (evs[1].old_desired_state, evs[1].new_desired_state),
        (Some(created.desired_state), SandboxDesiredState::Stopped)
    );
    assert_eq!(evs[2].version, stopped.version);
    assert!(
        evs.windows(2).all(|w| w[0].sk < w[1].sk),
        "ascending cursors"
    );

    // After a cursor: only what follows; bounded.
    let rest = repo.events_after(&org, &evs[0].sk, 100).await.unwrap();
    assert_eq!(rest, evs[1..].to_vec());
    assert_eq!(
        repo.events_after(&org, START, 1).await.unwrap(),
        evs[..1].to_vec()
    );
    let later = time_cursor(time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 60_000);
    assert!(
        repo.events_after(&org, &later, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Another organization's partition holds none of them.
    assert!(
        repo.events_after(&other, START, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_refused_write_leaves_no_event() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let created = repo
        .create(&sandbox(&org, "refused"), &OrgQuota::default())
        .await
        .unwrap();
    let mut stopped = created.clone();
    stopped.state = SandboxState::Stopped;
    repo.update(&created, &stopped, QuotaCheck::Record)
        .await
        .unwrap();
    // `created` is stale now: the same change again is refused, and so is its event.
    let mut archived = created.clone();
    archived.state = SandboxState::Archived;
    let err = repo
        .update(&created, &archived, QuotaCheck::Record)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::Changed,
                ..
            }
        ),
        "{err:?}"
    );
    // A create refused for its name: no event either.
    let dup = sandbox(&org, "refused");
    assert!(repo.create(&dup, &OrgQuota::default()).await.is_err());
    let evs = repo.events_after(&org, START, 100).await.unwrap();
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(evs.iter().all(|e| e.sandbox_id == created.id));
    assert_eq!(evs[1].new_state, SandboxState::Stopped);
}

#[tokio::test]
async fn expired_events_count_as_absent_and_the_table_has_ttl() {
    let store = cove_testkit::store().await;
    let org = new_org(&store).await;
    let ttl = store
        .raw_client()
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let desc = ttl.time_to_live_description.expect("TTL description");
    assert_eq!(desc.attribute_name(), Some(cove_store::TTL_ATTRIBUTE));
    assert_eq!(desc.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    let s = |v: &str| AttributeValue::S(v.to_owned());
    let id = SandboxId::new_random();
    store
        .raw_client()
        .put_item()
        .table_name(store.table())
        .item("pk", s(&format!("ORG#{org}#EVENTS")))
        .item("sk", s(&format!("0000000000001#{id}#0000000001")))
        .item("kinds", AttributeValue::L(vec![s("sandbox.created")]))
        .item("sandboxId", s(id.as_str()))
        .item("orgId", s(org.as_str()))
        .item("version", AttributeValue::N("1".into()))
        .item("newState", s("started"))
        .item("newDesiredState", s("started"))
        .item("ttl", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert!(
        store
            .sandboxes()
            .events_after(&org, START, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
