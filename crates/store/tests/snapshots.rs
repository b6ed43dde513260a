//! Snapshots in the table (dynoxide by default, DynamoDB Local when `COVE_TEST_DYNAMODB_ENDPOINT` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_api_types::ids::{OrganizationId, RunnerId, UserId};
use cove_api_types::snapshots::SnapshotState;
use cove_store::orgs::OrgRecord;
use cove_store::snapshots::{SnapshotJob, SnapshotPatch, SnapshotRecord};
use cove_store::{Conflict, StoreError};

fn now() -> String {
    cove_api_types::time::now_rfc3339()
}

async fn org(store: &cove_store::Store) -> OrganizationId {
    let rec = OrgRecord::new("o".into(), UserId::new_random(), false, now());
    store.orgs().create(&rec).await.unwrap();
    rec.id
}

fn snap(org: &OrganizationId, name: &str) -> SnapshotRecord {
    SnapshotRecord::new(org.clone(), name, "python:3.12", SnapshotJob::Pull, &now())
}

#[tokio::test]
async fn create_get_names_are_unique_per_org() {
    let store = cove_testkit::store().await;
    let (a, b) = (org(&store).await, org(&store).await);
    let s1 = store.snapshots().create(&snap(&a, "one")).await.unwrap();
    assert_eq!(s1.version, 1);
    let dup = store
        .snapshots()
        .create(&snap(&a, "one"))
        .await
        .unwrap_err();
    assert!(matches!(
        dup,
        StoreError::Conflict {
            conflict: Conflict::Exists,
            ..
        }
    ));
    // Same name in another organization is fine.
    store.snapshots().create(&snap(&b, "one")).await.unwrap();
    let got = store.snapshots().get_by_name(&a, "one").await.unwrap();
    assert_eq!(got.unwrap().id, s1.id);
    assert!(
        store
            .snapshots()
            .get_by_name(&a, "two")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.snapshots().list_by_org(&a).await.unwrap().len(), 1);
    assert_eq!(store.snapshots().count_usage(&a).await.unwrap(), 1);
}

#[tokio::test]
async fn set_state_is_versioned_and_moves_the_state_index() {
    let store = cove_testkit::store().await;
    let a = org(&store).await;
    let s1 = store.snapshots().create(&snap(&a, "s")).await.unwrap();
    let pending = store
        .snapshots()
        .list_in_state(SnapshotState::Pending, 1000)
        .await
        .unwrap();
    assert!(pending.iter().any(|r| r.id == s1.id));
    let runner = RunnerId::new_random();
    let patch = SnapshotPatch {
        initial_runner_id: Some(runner.clone()),
        ..Default::default()
    };
    let pulling = store
        .snapshots()
        .set_state(&s1.id, 1, SnapshotState::Pulling, patch)
        .await
        .unwrap();
    assert_eq!(
        (pulling.version, pulling.initial_runner_id.as_ref()),
        (2, Some(&runner))
    );
    // A stale version loses.
    let stale = store
        .snapshots()
        .set_state(&s1.id, 1, SnapshotState::Error, SnapshotPatch::default())
        .await
        .unwrap_err();
    assert!(stale.is_conflict());
    let active = store
        .snapshots()
        .set_state(
            &s1.id,
            2,
            SnapshotState::Active,
            SnapshotPatch {
                r#ref: Some("reg/cove-x/daytona-abc:daytona".into()),
                size_bytes: Some(1 << 20),
                entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(active.transition_at >= pulling.transition_at);
    let in_pending = store
        .snapshots()
        .list_in_state(SnapshotState::Pending, 1000)
        .await
        .unwrap();
    assert!(!in_pending.iter().any(|r| r.id == s1.id));
    let in_active = store
        .snapshots()
        .list_in_state(SnapshotState::Active, 1000)
        .await
        .unwrap();
    assert!(in_active.iter().any(|r| r.id == s1.id));
    // The error state is not indexed.
    let found = store
        .snapshots()
        .find_active_by_ref(&a, "reg/cove-x/daytona-abc:daytona")
        .await
        .unwrap();
    assert_eq!(found.unwrap().id, s1.id);
    assert!(
        store
            .snapshots()
            .find_active_by_ref(&a, "other")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn delete_frees_the_name_and_org_deletion_purges_rows() {
    let store = cove_testkit::store().await;
    let a = org(&store).await;
    let s1 = store.snapshots().create(&snap(&a, "s")).await.unwrap();
    store.snapshots().delete(&s1.id).await.unwrap();
    assert!(store.snapshots().get(&s1.id).await.unwrap().is_none());
    assert!(store.snapshots().delete(&s1.id).await.is_err());
    let s2 = store.snapshots().create(&snap(&a, "s")).await.unwrap();
    store
        .snapshots()
        .set_state(&s2.id, 1, SnapshotState::Error, SnapshotPatch::default())
        .await
        .unwrap();
    // Error does not count against the quota.
    assert_eq!(store.snapshots().count_usage(&a).await.unwrap(), 0);
    store.orgs().delete(&a).await.unwrap();
    assert!(store.snapshots().get(&s2.id).await.unwrap().is_none());
    let keys = store.scan_keys().await.unwrap();
    assert!(!keys.iter().any(|(pk, _)| pk.contains(&s2.id.to_string())));
    // A deleted organization takes no snapshot.
    let refused = store.snapshots().create(&snap(&a, "t")).await.unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Conflict {
            conflict: Conflict::OrganizationDeleting,
            ..
        }
    ));
}

#[tokio::test]
async fn general_snapshots_are_listed_apart() {
    let store = cove_testkit::store().await;
    let a = org(&store).await;
    let s1 = store.snapshots().create(&snap(&a, "g")).await.unwrap();
    let mut g = s1.clone();
    g.general = true;
    let g = store.snapshots().update(&s1, &g).await.unwrap();
    assert!(store.snapshots().update(&s1, &g).await.is_err());
    assert!(store.snapshots().list_by_org(&a).await.unwrap().is_empty());
    let general = store.snapshots().list_general().await.unwrap();
    assert!(general.iter().any(|r| r.id == s1.id));
    store
        .snapshots()
        .touch_last_used(&s1.id, &now())
        .await
        .unwrap();
    let got = store.snapshots().get(&s1.id).await.unwrap().unwrap();
    assert!(got.last_used_at.is_some());
    assert_eq!(got.version, g.version);
}
