//! Organizations, roles, memberships and invitations in the table (dynoxide by default, DynamoDB
//! Local when `COVE_TEST_DYNAMODB_ENDPOINT` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_api_types::ids::{OrganizationId, UserId};
use cove_store::StoreError;
use cove_store::invitations::{InviteRecord, InviteStatus};
use cove_store::memberships::{MembershipRecord, OrgRole};
use cove_store::orgs::{OrgQuota, OrgRecord};
use cove_store::roles::RoleRecord;

fn now() -> String {
    cove_api_types::time::now_rfc3339()
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn member(org: &OrganizationId, user: &str, role: OrgRole) -> MembershipRecord {
    MembershipRecord {
        organization_id: org.clone(),
        user_id: uid(user),
        role,
        assigned_role_ids: vec![],
        created_at: now(),
        updated_at: now(),
        version: 1,
    }
}

fn invite(org: &OrganizationId, email: &str) -> InviteRecord {
    InviteRecord {
        id: uuid_like(),
        organization_id: org.clone(),
        organization_name: "Team".into(),
        email: email.into(),
        invited_by: "alice@example.com".into(),
        role: OrgRole::Member,
        assigned_role_ids: vec![],
        status: InviteStatus::Pending,
        expires_at: "2999-01-01T00:00:00.000Z".into(),
        created_at: now(),
        updated_at: now(),
        version: 1,
    }
}

fn uuid_like() -> String {
    OrganizationId::new_random().to_string()
}

async fn team(store: &cove_store::Store) -> OrgRecord {
    let org = OrgRecord::new("Team".into(), uid("alice"), false, now());
    store
        .orgs()
        .create_with_owner(&org, &member(&org.id, "alice", OrgRole::Owner))
        .await
        .unwrap();
    org
}

#[tokio::test]
async fn new_organizations_get_the_default_quota_and_update_is_versioned() {
    let store = cove_testkit::store().await;
    let mut org = team(&store).await;
    let got = store.orgs().get(&org.id).await.unwrap().unwrap();
    assert_eq!(got.quota, OrgQuota::default());
    assert_eq!(got.quota.max_cpu_per_sandbox, 4);
    assert_eq!(got.quota.volume_quota, 100);
    org.quota.max_cpu_per_sandbox = 8;
    org.version = 2;
    store.orgs().update(&org).await.unwrap();
    assert!(matches!(
        store.orgs().update(&org).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .orgs()
            .get(&org.id)
            .await
            .unwrap()
            .unwrap()
            .quota
            .max_cpu_per_sandbox,
        8
    );
}

#[tokio::test]
async fn roles_crud_and_globals() {
    let store = cove_testkit::store().await;
    let org = team(&store).await;
    let global = cove_store::roles::GLOBAL_ROLES[0].0;
    assert!(
        store
            .roles()
            .get(&org.id, global)
            .await
            .unwrap()
            .unwrap()
            .is_global()
    );
    let mut r = RoleRecord {
        id: uuid_like(),
        organization_id: Some(org.id.clone()),
        name: "R".into(),
        description: String::new(),
        permissions: vec!["write:sandboxes".into()],
        created_at: now(),
        updated_at: now(),
        version: 1,
    };
    store.roles().create(&org.id, &r).await.unwrap();
    assert_eq!(store.roles().list(&org.id).await.unwrap(), vec![r.clone()]);
    r.version = 2;
    r.name = "R2".into();
    store.roles().update(&org.id, &r).await.unwrap();
    assert!(matches!(
        store.roles().update(&org.id, &r).await,
        Err(StoreError::Conflict { .. })
    ));
    store.roles().delete(&org.id, &r.id).await.unwrap();
    assert!(matches!(
        store.roles().delete(&org.id, &r.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn accepting_adds_the_membership_once_and_closes_the_invitation() {
    let store = cove_testkit::store().await;
    let org = team(&store).await;
    let inv = invite(&org.id, "bob@example.com");
    store.invitations().create(&inv).await.unwrap();
    assert_eq!(
        store
            .invitations()
            .list_for_email("BOB@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    let bob = member(&org.id, "bob", OrgRole::Member);
    store
        .invitations()
        .accept(&inv, &bob, &now())
        .await
        .unwrap();
    assert!(matches!(
        store.invitations().accept(&inv, &bob, &now()).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .invitations()
            .set_status(&inv, InviteStatus::Cancelled, &now())
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let got = store
        .invitations()
        .get(&org.id, &inv.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.status, got.version), (InviteStatus::Accepted, 2));
    assert!(
        store
            .memberships()
            .get(&org.id, &uid("bob"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_last_owner_is_kept_by_the_owner_check() {
    let store = cove_testkit::store().await;
    let org = team(&store).await;
    store
        .memberships()
        .create(&member(&org.id, "bob", OrgRole::Owner))
        .await
        .unwrap();
    store
        .memberships()
        .delete(&org.id, &uid("bob"), Some(&uid("alice")))
        .await
        .unwrap();
    // Alice can't be removed on the strength of Bob's (gone) ownership.
    assert!(matches!(
        store
            .memberships()
            .delete(&org.id, &uid("alice"), Some(&uid("bob")))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .memberships()
            .list_for_org(&org.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn deleting_an_organization_empties_its_partition() {
    let store = cove_testkit::store().await;
    let org = team(&store).await;
    store
        .memberships()
        .create(&member(&org.id, "bob", OrgRole::Member))
        .await
        .unwrap();
    store
        .invitations()
        .create(&invite(&org.id, "carol@example.com"))
        .await
        .unwrap();
    store.orgs().delete(&org.id).await.unwrap();
    let left: Vec<_> = store
        .scan_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|(pk, _)| pk.contains(org.id.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        store
            .invitations()
            .list_for_email("carol@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.orgs().delete(&org.id).await,
        Err(StoreError::NotFound { .. })
    ));
}
