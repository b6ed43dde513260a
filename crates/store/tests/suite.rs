//! The store's suite. It runs against in-process dynoxide by default and against AWS DynamoDB Local
//! when `COVE_TEST_DYNAMODB_ENDPOINT` is set (see `scripts/test.sh`): the same tests, two backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_api_types::ids::{OrganizationId, UserId};
use cove_store::api_keys::ApiKeyRecord;
use cove_store::users::{NewUser, SystemRole};
use cove_store::{Cursor, StoreError, bootstrap, keys};

fn user(id: &str) -> NewUser {
    NewUser {
        id: UserId::parse(id).unwrap(),
        name: format!("User {id}"),
        email: format!("{id}@example.com"),
        email_verified: true,
        role: SystemRole::User,
    }
}

fn key_record(org: &OrganizationId, user: &UserId, name: &str) -> (ApiKeyRecord, String) {
    let k = keys::generate().unwrap();
    let rec = ApiKeyRecord {
        organization_id: org.clone(),
        user_id: user.clone(),
        name: name.into(),
        key_hash: k.hash.clone(),
        key_prefix: k.prefix.clone(),
        key_suffix: k.suffix.clone(),
        permissions: vec!["write:sandboxes".into()],
        created_at: cove_api_types::time::now_rfc3339(),
        expires_at: None,
        last_used_at: None,
        version: 1,
    };
    (rec, k.value)
}

#[tokio::test]
async fn ensure_table_is_idempotent() {
    let store = cove_testkit::store().await;
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
}

#[tokio::test]
async fn provisioning_creates_user_personal_org_and_owner_membership_once() {
    let store = cove_testkit::store().await;
    let u = store.users().get_or_provision(user("alice")).await.unwrap();
    let org = store
        .orgs()
        .get(&u.personal_organization_id)
        .await
        .unwrap()
        .expect("personal org");
    assert!(org.personal);
    assert_eq!(org.created_by, u.id);
    let m = store
        .memberships()
        .get(&org.id, &u.id)
        .await
        .unwrap()
        .expect("membership");
    assert_eq!(m.role, cove_store::memberships::OrgRole::Owner);

    let again = store.users().get_or_provision(user("alice")).await.unwrap();
    assert_eq!(again.personal_organization_id, u.personal_organization_id);
}

#[tokio::test]
async fn concurrent_first_sight_provisions_exactly_one_org() {
    let store = cove_testkit::store().await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.users().get_or_provision(user("bob")).await })
        })
        .collect();
    let mut orgs = std::collections::HashSet::new();
    for t in tasks {
        orgs.insert(t.await.unwrap().unwrap().personal_organization_id);
    }
    assert_eq!(orgs.len(), 1, "every caller must see the same personal org");
    let ms = store
        .memberships()
        .list_for_user(&UserId::parse("bob").unwrap())
        .await
        .unwrap();
    assert_eq!(ms.len(), 1, "exactly one membership, got {ms:?}");
}

#[tokio::test]
async fn api_key_lifecycle_with_conditional_writes() {
    let store = cove_testkit::store().await;
    let u = store.users().get_or_provision(user("carol")).await.unwrap();
    let org = u.personal_organization_id.clone();
    let (rec, value) = key_record(&org, &u.id, "ci");
    store.api_keys().create(&rec).await.unwrap();

    // Same name, same user: conflict, and the first key is intact.
    let (dup, _) = key_record(&org, &u.id, "ci");
    assert!(matches!(
        store.api_keys().create(&dup).await,
        Err(StoreError::Conflict { .. })
    ));
    let got = store
        .api_keys()
        .get(&org, &u.id, "ci")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.key_hash, rec.key_hash);

    // Same name, another user of the same org: allowed.
    let other = UserId::parse("dave").unwrap();
    let (theirs, _) = key_record(&org, &other, "ci");
    store.api_keys().create(&theirs).await.unwrap();

    let auth = store
        .api_keys()
        .get_by_hash(&keys::hash(&value))
        .await
        .unwrap()
        .expect("pointer");
    assert_eq!(auth.organization_id, org);
    assert_eq!(auth.user_id, u.id);
    assert_eq!(auth.name, "ci");

    assert_eq!(
        store
            .api_keys()
            .list(&org, Some(&u.id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.api_keys().list(&org, None).await.unwrap().len(),
        2,
        "carol's ci and dave's ci"
    );

    // touch records the use, then throttles.
    let now = cove_api_types::time::now_rfc3339();
    store
        .api_keys()
        .touch(&auth, &rec.key_hash, &now, 10)
        .await
        .unwrap();
    let after = store
        .api_keys()
        .get(&org, &u.id, "ci")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.last_used_at.as_deref(), Some(now.as_str()));
    let auth2 = store
        .api_keys()
        .get_by_hash(&rec.key_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth2.last_used_at.as_deref(), Some(now.as_str()));
    let later = cove_api_types::time::format_rfc3339(
        cove_api_types::time::parse_rfc3339(&now).unwrap() + time::Duration::seconds(3),
    );
    store
        .api_keys()
        .touch(&auth2, &rec.key_hash, &later, 10)
        .await
        .unwrap();
    let throttled = store
        .api_keys()
        .get(&org, &u.id, "ci")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        throttled.last_used_at.as_deref(),
        Some(now.as_str()),
        "second use within 10 s is not written"
    );

    store.api_keys().delete(&org, &u.id, "ci").await.unwrap();
    assert!(
        store
            .api_keys()
            .get_by_hash(&rec.key_hash)
            .await
            .unwrap()
            .is_none(),
        "pointer deleted too"
    );
    assert!(matches!(
        store.api_keys().delete(&org, &u.id, "ci").await,
        Err(StoreError::NotFound { .. })
    ));
    // The other user's key of the same name is untouched.
    assert!(
        store
            .api_keys()
            .get(&org, &other, "ci")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn concurrent_creates_of_one_name_have_exactly_one_winner() {
    let store = cove_testkit::store().await;
    let u = store.users().get_or_provision(user("erin")).await.unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            let (rec, _) = key_record(&u.personal_organization_id, &u.id, "race");
            tokio::spawn(async move { store.api_keys().create(&rec).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        store
            .api_keys()
            .list(&u.personal_organization_id, Some(&u.id))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn cursor_pagination_walks_every_key_once() {
    let store = cove_testkit::store().await;
    let u = store.users().get_or_provision(user("frank")).await.unwrap();
    let org = u.personal_organization_id.clone();
    for i in 0..7 {
        let (rec, _) = key_record(&org, &u.id, &format!("k{i}"));
        store.api_keys().create(&rec).await.unwrap();
    }
    let mut seen = vec![];
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .api_keys()
            .list_page(&org, Some(&u.id), cursor.as_ref(), 3)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|k| k.name));
        // Cursors survive a round trip through their string form.
        cursor = page.next.map(|c| Cursor::parse(c.as_str()).unwrap());
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("k{i}")).collect::<Vec<_>>());
    assert!(pages >= 3);
    assert!(matches!(
        Cursor::parse("bm90IGpzb24"),
        Err(StoreError::InvalidCursor)
    ));
}

#[tokio::test]
async fn bootstrap_creates_one_admin_key_and_rotation_replaces_it() {
    let store = cove_testkit::store().await;
    let first = bootstrap::ensure_admin(&store).await.unwrap();
    let key = first.api_key.expect("first start creates a key");
    assert!(keys::looks_like_key(&key));
    let second = bootstrap::ensure_admin(&store).await.unwrap();
    assert!(second.api_key.is_none(), "no new key on restart");
    assert_eq!(second.organization_id, first.organization_id);
    let admin = store
        .users()
        .get(&UserId::parse(bootstrap::ADMIN_USER_ID).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.role, SystemRole::Admin);

    let rotated = bootstrap::rotate_admin_key(&store).await.unwrap();
    assert_ne!(rotated, key);
    assert!(
        store
            .api_keys()
            .get_by_hash(&keys::hash(&key))
            .await
            .unwrap()
            .is_none(),
        "old key revoked"
    );
    let auth = store
        .api_keys()
        .get_by_hash(&keys::hash(&rotated))
        .await
        .unwrap()
        .expect("new key works");
    assert_eq!(
        auth.permissions.len(),
        cove_api_types::permissions::Permission::ALL.len()
    );
}
