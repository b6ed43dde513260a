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
    store.roles().update(&org.id, "R", &r).await.unwrap();
    assert!(matches!(
        store.roles().update(&org.id, "R2", &r).await,
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

#[tokio::test]
async fn an_organization_being_deleted_refuses_new_items() {
    let store = cove_testkit::store().await;
    let org = team(&store).await;
    store.orgs().mark_deleting(&org.id).await.unwrap();
    let role = RoleRecord {
        id: uuid_like(),
        organization_id: Some(org.id.clone()),
        name: "Late".into(),
        description: String::new(),
        permissions: vec![],
        created_at: now(),
        updated_at: now(),
        version: 1,
    };
    assert!(matches!(
        store.roles().create(&org.id, &role).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .memberships()
            .create(&member(&org.id, "bob", OrgRole::Member))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .invitations()
            .create(&invite(&org.id, "carol@example.com"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let key = cove_store::keys::generate().unwrap();
    let api_key = cove_store::api_keys::ApiKeyRecord {
        organization_id: org.id.clone(),
        user_id: uid("alice"),
        name: "late".into(),
        key_hash: key.hash,
        key_prefix: key.prefix,
        key_suffix: key.suffix,
        permissions: vec![],
        created_at: now(),
        expires_at: None,
        last_used_at: None,
        version: 1,
    };
    assert!(matches!(
        store.api_keys().create(&api_key).await,
        Err(StoreError::Conflict { .. })
    ));
    // A concurrent admin update written against the pre-mark version loses, so it can't clear
    // the mark.
    let mut stale = org.clone();
    stale.version = 2;
    assert!(matches!(
        store.orgs().update(&stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.orgs().get(&org.id).await.unwrap().unwrap().deleting);
    // Finishing the delete (or running it again after a crash) empties the partition.
    store.orgs().delete(&org.id).await.unwrap();
    let left: Vec<_> = store
        .scan_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|(pk, _)| pk.contains(org.id.as_str()) || pk.starts_with("APIKEYHASH#"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        store.orgs().mark_deleting(&org.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn role_names_are_locked_case_insensitively() {
    let store = cove_testkit::store().await;
    let org = team(&store).await;
    let role = |name: &str| RoleRecord {
        id: uuid_like(),
        organization_id: Some(org.id.clone()),
        name: name.into(),
        description: String::new(),
        permissions: vec![],
        created_at: now(),
        updated_at: now(),
        version: 1,
    };
    let mut a = role("Ops");
    store.roles().create(&org.id, &a).await.unwrap();
    assert!(matches!(
        store.roles().create(&org.id, &role("OPS")).await,
        Err(StoreError::Conflict { .. })
    ));
    let b = role("Dev");
    store.roles().create(&org.id, &b).await.unwrap();
    // Renaming onto a taken name loses; onto a free one moves the lock.
    a.version = 2;
    a.name = "dev".into();
    assert!(matches!(
        store.roles().update(&org.id, "Ops", &a).await,
        Err(StoreError::Conflict { .. })
    ));
    a.name = "Infra".into();
    store.roles().update(&org.id, "Ops", &a).await.unwrap();
    store.roles().create(&org.id, &role("ops")).await.unwrap();
    store.roles().delete(&org.id, &b.id).await.unwrap();
    store.roles().create(&org.id, &role("DEV")).await.unwrap();
    let mut locks: Vec<String> = store
        .scan_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, sk)| sk.starts_with("ROLENAME#"))
        .map(|(_, sk)| sk)
        .collect();
    locks.sort();
    assert_eq!(locks, ["ROLENAME#dev", "ROLENAME#infra", "ROLENAME#ops"]);
}

/// Issue 10 item 3, step by step: the mark goes first, the check for sandboxes is strongly
/// consistent (the name locks in the partition, not the list index), a refused delete undoes its
/// mark, and nothing created against a deleting or deleted organization survives.
#[tokio::test]
async fn deleting_an_organization_races_no_sandbox_create() {
    use cove_api_types::ids::SandboxId;
    use cove_api_types::sandbox::SandboxState;
    use cove_store::sandboxes::{QuotaCheck, SandboxRecord};
    use cove_store::{Conflict, StoreError};
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = team(&store).await;
    let q = OrgQuota::default();
    let sandbox = |name: &str| {
        SandboxRecord::new(SandboxId::new_random(), org.id.clone(), name, "img", &now())
    };
    let a = repo.create(&sandbox("a"), &q).await.unwrap();

    // Its list-index entry lags behind (as a GSI may on AWS): the delete still sees it.
    store
        .raw_client()
        .update_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SANDBOX#{}", a.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("#META".into()),
        )
        .update_expression("REMOVE gsi1pk, gsi1sk")
        .send()
        .await
        .unwrap();
    assert!(
        repo.list_by_org(&org.id, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = store.orgs().delete(&org.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::OrganizationHasSandboxes,
                ..
            }
        ),
        "{err:?}"
    );
    // Refused: the mark is undone and nothing was purged.
    let rec = store.orgs().get(&org.id).await.unwrap().unwrap();
    assert!(!rec.deleting);
    assert!(
        store
            .memberships()
            .get(&org.id, &uid("alice"))
            .await
            .unwrap()
            .is_some()
    );
    repo.create(&sandbox("b"), &q).await.unwrap();

    // Destroy both; then a delete in flight has marked the organization: a create is refused.
    let b = repo.get_by_name(&org.id, "b").await.unwrap().unwrap();
    for prev in [repo.get(&a.id).await.unwrap().unwrap(), b] {
        let mut next = prev.clone();
        next.state = SandboxState::Destroyed;
        next.name = format!("DESTROYED_{}", prev.name);
        repo.update(&prev, &next, QuotaCheck::Record).await.unwrap();
    }
    store.orgs().mark_deleting(&org.id).await.unwrap();
    let late = sandbox("late");
    let err = repo.create(&late, &q).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::OrganizationDeleting,
                ..
            }
        ),
        "{err:?}"
    );
    store.orgs().delete(&org.id).await.unwrap();

    // A create that read the organization before the delete and writes after it: refused too.
    let after = sandbox("after");
    assert!(repo.create(&after, &q).await.is_err());
    for s in [&late, &after] {
        assert!(repo.get(&s.id).await.unwrap().is_none());
    }
    let left: Vec<_> = store
        .scan_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|(pk, _)| pk.contains(org.id.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
