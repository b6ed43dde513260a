//! The sandbox repository against a real DynamoDB API (dynoxide, or DynamoDB Local when
//! `COVE_TEST_DYNAMODB_ENDPOINT` is set): name locks, quota-checked usage counters, runner counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId, UserId, VolumeId};
use cove_api_types::sandbox::SandboxState;
use cove_store::orgs::{OrgQuota, OrgRecord};
use cove_store::sandboxes::{QuotaCheck, SandboxRecord, SandboxUsage, generate_auth_token};
use cove_store::{Conflict, Cursor, Entity, Resource, Store, StoreConfig, StoreError};

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

/// A user action's quota check.
fn enforce(q: &OrgQuota) -> QuotaCheck<'_> {
    QuotaCheck::Enforce(q)
}

/// A live organization (sandbox writes check that their organization exists).
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

fn big_quota() -> OrgQuota {
    OrgQuota {
        total_cpu_quota: 1_000_000,
        total_memory_quota: 1_000_000,
        total_disk_quota: 1_000_000,
        ..OrgQuota::default()
    }
}

/// A raw client on the store's table, for rows the sandbox repository never writes (runners).
fn raw(store: &Store) -> aws_sdk_dynamodb::Client {
    let cfg = StoreConfig::local(cove_testkit::dynamodb_endpoint(), store.table());
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(cfg.region.clone()))
        .endpoint_url(&cfg.endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            &cfg.access_key_id,
            &cfg.secret_access_key,
            None,
            None,
            "test",
        ))
        .http_client(cove_store::https_client())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

async fn put_runner(store: &Store, id: &RunnerId) {
    raw(store)
        .put_item()
        .table_name(store.table())
        .item("pk", s(&format!("RUNNER#{id}")))
        .item("sk", s("#META"))
        .item("id", s(id.as_str()))
        .item("state", s("ready"))
        .item("assignedSandboxes", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
}

async fn assigned(store: &Store, id: &RunnerId) -> i64 {
    let out = raw(store)
        .get_item()
        .table_name(store.table())
        .key("pk", s(&format!("RUNNER#{id}")))
        .key("sk", s("#META"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
        .expect("runner row")
        .get("assignedSandboxes")
        .and_then(|v| v.as_n().ok())
        .map(|n| n.parse().unwrap())
        .unwrap_or(0)
}

fn with_state(r: &SandboxRecord, state: SandboxState) -> SandboxRecord {
    let mut n = r.clone();
    n.state = state;
    n
}

#[tokio::test]
async fn create_then_read_by_id_and_name() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let mut rec = sandbox(&org, "alpha");
    rec.env.insert("A".into(), "1".into());
    rec.labels.insert("team".into(), "x".into());
    rec.volumes.push(cove_store::sandboxes::SandboxVolume {
        volume_id: VolumeId::new_random(),
        mount_path: "/data".into(),
        subpath: None,
    });
    let stored = repo.create(&rec, &OrgQuota::default()).await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.auth_token.len(), 32);
    assert!(
        stored
            .auth_token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );

    let got = repo.get(&rec.id).await.unwrap().expect("by id");
    assert_eq!(got, stored);
    let by_name = repo
        .get_by_name(&org, "alpha")
        .await
        .unwrap()
        .expect("by name");
    assert_eq!(by_name, stored);
    assert!(repo.get_by_name(&org, "beta").await.unwrap().is_none());
    assert!(
        repo.get_by_name(&OrganizationId::new_random(), "alpha")
            .await
            .unwrap()
            .is_none()
    );
    assert!(repo.get(&SandboxId::new_random()).await.unwrap().is_none());

    // `creating` holds compute and disk.
    assert_eq!(
        repo.usage(&org).await.unwrap(),
        SandboxUsage {
            cpu: 1,
            memory: 1,
            disk: 3
        }
    );
    assert_eq!(
        repo.usage(&OrganizationId::new_random()).await.unwrap(),
        SandboxUsage::default()
    );
}

#[tokio::test]
async fn names_are_unique_per_organization() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let (org_a, org_b) = (new_org(&store).await, new_org(&store).await);
    let first = repo
        .create(&sandbox(&org_a, "same"), &OrgQuota::default())
        .await
        .unwrap();

    let dup = sandbox(&org_a, "same");
    let err = repo.create(&dup, &OrgQuota::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::SandboxNameTaken,
                ..
            }
        ),
        "{err:?}"
    );
    // Nothing of the failed create is left behind.
    assert!(repo.get(&dup.id).await.unwrap().is_none());
    assert_eq!(repo.usage(&org_a).await.unwrap().cpu, 1);
    assert_eq!(
        repo.get_by_name(&org_a, "same").await.unwrap().unwrap().id,
        first.id
    );

    // The same name in another organization is fine.
    repo.create(&sandbox(&org_b, "same"), &OrgQuota::default())
        .await
        .unwrap();

    // Re-creating an existing id is a conflict too (not a name conflict).
    let mut again = first.clone();
    again.name = "other".into();
    let err = repo.create(&again, &OrgQuota::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::Exists,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(repo.get_by_name(&org_a, "other").await.unwrap().is_none());
}

#[tokio::test]
async fn fifty_concurrent_creates_respect_the_cpu_quota_exactly() {
    let store = cove_testkit::store().await;
    let org = new_org(&store).await;
    let quota = OrgQuota {
        total_cpu_quota: 10,
        total_memory_quota: 1000,
        total_disk_quota: 1000,
        ..OrgQuota::default()
    };
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let quota = quota.clone();
            let rec = sandbox(&org, &format!("sb-{i}"));
            tokio::spawn(async move { store.sandboxes().create(&rec, &quota).await })
        })
        .collect();
    let (mut ok, mut over) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::QuotaExceeded {
                resource: Resource::Cpu,
                limit: 10,
            }) => over += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((ok, over), (10, 40));
    let usage = store.sandboxes().usage(&org).await.unwrap();
    assert_eq!(
        usage,
        SandboxUsage {
            cpu: 10,
            memory: 10,
            disk: 30
        }
    );
    let page = store
        .sandboxes()
        .list_by_org(&org, 100, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
}

#[tokio::test]
async fn quota_errors_name_the_resource() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let quota = OrgQuota {
        total_cpu_quota: 10,
        total_memory_quota: 4,
        total_disk_quota: 8,
        ..OrgQuota::default()
    };
    let mut a = sandbox(&org, "a");
    a.memory = 3;
    repo.create(&a, &quota).await.unwrap();

    // Over through the table's condition (3 + 3 > 4).
    let mut b = sandbox(&org, "b");
    b.memory = 3;
    let err = repo.create(&b, &quota).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                resource: Resource::Memory,
                limit: 4
            }
        ),
        "{err:?}"
    );
    // Over on its own (9 GiB of disk > 8): refused before any write.
    let mut c = sandbox(&org, "c");
    c.memory = 1;
    c.disk = 9;
    let err = repo.create(&c, &quota).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                resource: Resource::Disk,
                limit: 8
            }
        ),
        "{err:?}"
    );

    // Nothing moved on failure; the name "b" is still free.
    assert_eq!(
        repo.usage(&org).await.unwrap(),
        SandboxUsage {
            cpu: 1,
            memory: 3,
            disk: 3
        }
    );
    b.memory = 1;
    repo.create(&b, &quota).await.unwrap();
}

#[tokio::test]
async fn stale_updates_conflict() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let v1 = repo
        .create(&sandbox(&org, "x"), &OrgQuota::default())
        .await
        .unwrap();
    let mut next = v1.clone();
    next.labels.insert("k".into(), "v".into());
    let q = OrgQuota::default();
    let v2 = repo.update(&v1, &next, enforce(&q)).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(repo.get(&v1.id).await.unwrap().unwrap(), v2);

    // A writer still holding v1 loses, and changes nothing.
    let err = repo
        .update(&v1, &with_state(&v1, SandboxState::Stopped), enforce(&q))
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
    let now = repo.get(&v1.id).await.unwrap().unwrap();
    assert_eq!(now.state, SandboxState::Creating);
    assert_eq!(repo.usage(&org).await.unwrap().cpu, 1);

    // Ten concurrent writers from the same version: exactly one wins.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let prev = v2.clone();
            let mut next = v2.clone();
            next.state = if i % 2 == 0 {
                SandboxState::Started
            } else {
                SandboxState::Stopped
            };
            tokio::spawn(async move {
                let q = OrgQuota::default();
                store.sandboxes().update(&prev, &next, enforce(&q)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => winners.push(r),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = repo.get(&v1.id).await.unwrap().unwrap();
    assert_eq!(stored, winners[0]);
    let expected_cpu = if stored.state == SandboxState::Started {
        1
    } else {
        0
    };
    assert_eq!(repo.usage(&org).await.unwrap().cpu, expected_cpu);
}

#[tokio::test]
async fn stop_releases_compute_destroy_releases_everything_and_frees_the_name() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let quota = OrgQuota {
        total_cpu_quota: 4,
        total_memory_quota: 8,
        total_disk_quota: 20,
        ..OrgQuota::default()
    };
    let mut rec = sandbox(&org, "box");
    rec.cpu = 2;
    rec.memory = 4;
    rec.disk = 5;
    let created = repo.create(&rec, &quota).await.unwrap();
    let started = repo
        .update(
            &created,
            &with_state(&created, SandboxState::Started),
            enforce(&quota),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.usage(&org).await.unwrap(),
        SandboxUsage {
            cpu: 2,
            memory: 4,
            disk: 5
        }
    );
    let stopped = repo
        .update(
            &started,
            &with_state(&started, SandboxState::Stopped),
            enforce(&quota),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.usage(&org).await.unwrap(),
        SandboxUsage {
            cpu: 0,
            memory: 0,
            disk: 5
        }
    );

    // While it is stopped another sandbox takes the CPU: starting it again is over quota.
    let mut other = sandbox(&org, "other");
    other.cpu = 3;
    let other = repo.create(&other, &quota).await.unwrap();
    let err = repo
        .update(
            &stopped,
            &with_state(&stopped, SandboxState::Starting),
            enforce(&quota),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                resource: Resource::Cpu,
                limit: 4
            }
        ),
        "{err:?}"
    );
    assert_eq!(repo.get(&stopped.id).await.unwrap().unwrap(), stopped);

    // Error releases compute and disk (CONTRACT §8), as does destroy.
    let errored = repo
        .update(
            &other,
            &with_state(&other, SandboxState::Error),
            enforce(&quota),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.usage(&org).await.unwrap(),
        SandboxUsage {
            cpu: 0,
            memory: 0,
            disk: 5
        }
    );

    let mut destroyed = with_state(&stopped, SandboxState::Destroyed);
    destroyed.name = format!("DESTROYED_box_{}", 1_700_000_000_000u64);
    repo.update(&stopped, &destroyed, enforce(&quota))
        .await
        .unwrap();
    assert_eq!(repo.usage(&org).await.unwrap(), SandboxUsage::default());
    assert!(repo.get_by_name(&org, "box").await.unwrap().is_none());
    assert!(
        repo.get_by_name(&org, &destroyed.name)
            .await
            .unwrap()
            .is_none()
    );
    let row = repo.get(&stopped.id).await.unwrap().unwrap();
    assert_eq!(row.state, SandboxState::Destroyed);

    // The name is free again.
    let reborn = repo.create(&sandbox(&org, "box"), &quota).await.unwrap();
    assert_eq!(
        repo.get_by_name(&org, "box").await.unwrap().unwrap().id,
        reborn.id
    );
    let page = repo.list_by_org(&org, 10, None).await.unwrap();
    let ids: HashSet<_> = page.items.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, HashSet::from([reborn.id.clone(), errored.id.clone()]));
}

#[tokio::test]
async fn renames_move_the_name_lock() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let q = OrgQuota::default();
    let a = repo.create(&sandbox(&org, "a"), &q).await.unwrap();
    let b = repo.create(&sandbox(&org, "b"), &q).await.unwrap();

    let mut to_b = a.clone();
    to_b.name = "b".into();
    let err = repo.update(&a, &to_b, enforce(&q)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::SandboxNameTaken,
                ..
            }
        ),
        "{err:?}"
    );

    let mut to_c = a.clone();
    to_c.name = "c".into();
    let c = repo.update(&a, &to_c, enforce(&q)).await.unwrap();
    assert!(repo.get_by_name(&org, "a").await.unwrap().is_none());
    assert_eq!(repo.get_by_name(&org, "c").await.unwrap().unwrap(), c);
    assert_eq!(repo.get_by_name(&org, "b").await.unwrap().unwrap(), b);
    repo.create(&sandbox(&org, "a"), &q).await.unwrap();
}

#[tokio::test]
async fn list_pages_newest_first_without_duplicates_omissions_or_destroyed() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let q = big_quota();
    let mut live = Vec::new();
    for i in 0..250u32 {
        let mut r = sandbox(&org, &format!("s{i:03}"));
        r.created_at = format!("2026-01-01T{:02}:{:02}:00.000Z", i / 60, i % 60);
        let r = repo.create(&r, &q).await.unwrap();
        if i % 10 == 3 {
            repo.update(&r, &with_state(&r, SandboxState::Destroyed), enforce(&q))
                .await
                .unwrap();
        } else {
            live.push(r);
        }
    }
    // Rows written before destroyed rows left the index (or an index lagging behind): the
    // filter drops them and pages still come out full.
    let client = raw(&store);
    for i in 0..40u32 {
        let id = format!("legacy{i:02}");
        client
            .put_item()
            .table_name(store.table())
            .item("pk", s(&format!("SANDBOX#{id}")))
            .item("sk", s("#META"))
            .item("gsi1pk", s(&format!("ORG#{org}#SANDBOXES")))
            .item(
                "gsi1sk",
                s(&format!("2026-01-01T01:{:02}:30.000Z#{id}", i + 10)),
            )
            .item("state", s("destroyed"))
            .send()
            .await
            .unwrap();
    }
    // Another organization's sandboxes never show up.
    let other = new_org(&store).await;
    repo.create(&sandbox(&other, "s000"), &q).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut sizes = Vec::new();
    loop {
        let page = repo.list_by_org(&org, 100, cursor.as_ref()).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items);
        match page.next {
            // A cursor survives being sent to a client and back.
            Some(c) => cursor = Some(Cursor::parse(c.as_str()).unwrap()),
            None => break,
        }
    }
    assert_eq!(live.len(), 225);
    assert_eq!(&sizes[..3], &[100, 100, 25]);
    assert!(sizes[3..].iter().all(|n| *n == 0));
    let ids: Vec<_> = seen.iter().map(|r| r.id.clone()).collect();
    let unique: HashSet<_> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates");
    let want: HashSet<_> = live.iter().map(|r| r.id.clone()).collect();
    assert_eq!(unique, want);
    assert!(seen.iter().all(|r| !r.is_destroyed()));
    assert!(
        seen.windows(2).all(|w| w[0].created_at > w[1].created_at),
        "newest first"
    );

    // Small pages, and a cursor of one organization is refused for another.
    let p = repo.list_by_org(&org, 7, None).await.unwrap();
    assert_eq!(p.items.len(), 7);
    assert_eq!(p.items[0].name, "s249");
    let next = p.next.unwrap();
    let p2 = repo.list_by_org(&org, 7, Some(&next)).await.unwrap();
    // s243 was destroyed.
    assert_eq!(p.items[6].name, "s242");
    assert_eq!(p2.items[0].name, "s241");
    assert!(matches!(
        repo.list_by_org(&other, 7, Some(&next)).await,
        Err(StoreError::InvalidCursor)
    ));
    assert_eq!(
        repo.list_by_org(&other, 1000, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn runner_counts_follow_placement_moves_and_destroy() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let q = big_quota();
    let (r1, r2) = (RunnerId::new_random(), RunnerId::new_random());
    put_runner(&store, &r1).await;
    put_runner(&store, &r2).await;

    let mut a = sandbox(&org, "a");
    a.runner_id = Some(r1.clone());
    let a = repo.create(&a, &q).await.unwrap();
    let mut b = sandbox(&org, "b");
    b.runner_id = Some(r1.clone());
    let b = repo.create(&b, &q).await.unwrap();
    assert_eq!(assigned(&store, &r1).await, 2);
    let on_r1: HashSet<_> = repo
        .list_by_runner(&r1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(on_r1, HashSet::from([a.id.clone(), b.id.clone()]));

    // Placing on a runner that does not exist fails, and leaves nothing behind.
    let mut ghost = sandbox(&org, "ghost");
    ghost.runner_id = Some(RunnerId::new_random());
    let err = repo.create(&ghost, &q).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: Entity::Runner,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(repo.get(&ghost.id).await.unwrap().is_none());
    assert!(repo.get_by_name(&org, "ghost").await.unwrap().is_none());

    // A move: -1 on the old runner, +1 on the new one.
    let mut moved = a.clone();
    moved.runner_id = Some(r2.clone());
    let a = repo.update(&a, &moved, enforce(&q)).await.unwrap();
    assert_eq!(
        (assigned(&store, &r1).await, assigned(&store, &r2).await),
        (1, 1)
    );
    assert_eq!(repo.list_by_runner(&r2).await.unwrap(), vec![a.clone()]);

    // A state change on the same runner leaves the counts alone.
    let a = repo
        .update(&a, &with_state(&a, SandboxState::Started), enforce(&q))
        .await
        .unwrap();
    assert_eq!(assigned(&store, &r2).await, 1);

    // Destroy: -1, and it leaves the runner's listing (runner_id kept on the row).
    repo.update(&a, &with_state(&a, SandboxState::Destroyed), enforce(&q))
        .await
        .unwrap();
    assert_eq!(
        (assigned(&store, &r1).await, assigned(&store, &r2).await),
        (1, 0)
    );
    assert!(repo.list_by_runner(&r2).await.unwrap().is_empty());

    // Unassigning (archive): -1.
    let mut off = b.clone();
    off.runner_id = None;
    off.state = SandboxState::Archived;
    let b = repo.update(&b, &off, enforce(&q)).await.unwrap();
    assert_eq!(assigned(&store, &r1).await, 0);

    // A runner row that is gone does not block destroying its sandboxes.
    let mut c = sandbox(&org, "c");
    c.runner_id = Some(r1.clone());
    let c = repo.create(&c, &q).await.unwrap();
    raw(&store)
        .delete_item()
        .table_name(store.table())
        .key("pk", s(&format!("RUNNER#{r1}")))
        .key("sk", s("#META"))
        .send()
        .await
        .unwrap();
    repo.update(&c, &with_state(&c, SandboxState::Destroyed), enforce(&q))
        .await
        .unwrap();
    assert!(
        !store
            .scan_keys()
            .await
            .unwrap()
            .contains(&(format!("RUNNER#{r1}"), "#META".into())),
        "no stub runner row"
    );
    assert_eq!(
        repo.get(&b.id).await.unwrap().unwrap().state,
        SandboxState::Archived
    );
}

#[tokio::test]
async fn touch_activity_only_moves_forward() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let mut r = sandbox(&org, "t");
    r.last_activity_at = "2026-01-01T00:00:00.000Z".into();
    let r = repo.create(&r, &OrgQuota::default()).await.unwrap();

    let at = |v: &str| v.to_owned();
    // Older than the threshold: written.
    repo.touch_activity(
        &r.id,
        "2026-01-01T00:10:00.000Z",
        "2026-01-01T00:09:50.000Z",
    )
    .await
    .unwrap();
    let got = repo.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.last_activity_at, at("2026-01-01T00:10:00.000Z"));
    assert_eq!(got.version, r.version, "touch does not bump the version");

    // Recent enough: no write.
    repo.touch_activity(
        &r.id,
        "2026-01-01T00:10:05.000Z",
        "2026-01-01T00:09:55.000Z",
    )
    .await
    .unwrap();
    // Backwards in time: no write.
    repo.touch_activity(
        &r.id,
        "2026-01-01T00:05:00.000Z",
        "2026-01-01T00:20:00.000Z",
    )
    .await
    .unwrap();
    let got = repo.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.last_activity_at, at("2026-01-01T00:10:00.000Z"));

    // A concurrent update from the pre-touch version still succeeds.
    repo.update(
        &r,
        &with_state(&r, SandboxState::Started),
        QuotaCheck::Record,
    )
    .await
    .unwrap();
    // Missing sandbox: a no-op.
    let missing = SandboxId::new_random();
    repo.touch_activity(
        &missing,
        "2026-01-01T00:10:00.000Z",
        "2026-01-01T00:09:50.000Z",
    )
    .await
    .unwrap();
    assert!(repo.get(&missing).await.unwrap().is_none());
}

#[tokio::test]
async fn organizations_being_deleted_take_no_new_sandboxes() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let q = OrgQuota::default();
    // An organization without a row (gone, or never there) takes no sandbox either.
    let ghost_org = OrganizationId::new_random();
    let err = repo
        .create(&sandbox(&ghost_org, "x"), &q)
        .await
        .unwrap_err();
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
    assert!(store.scan_keys().await.unwrap().is_empty());

    // An organization being deleted takes no new sandboxes (nor renames into its partition),
    // while state changes of existing ones still go through.
    let org = new_org(&store).await;
    let a = repo.create(&sandbox(&org, "a"), &q).await.unwrap();
    raw(&store)
        .update_item()
        .table_name(store.table())
        .key("pk", s(&format!("ORG#{org}")))
        .key("sk", s("#META"))
        .update_expression("SET deleting = :t")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let err = repo.create(&sandbox(&org, "b"), &q).await.unwrap_err();
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
    let mut renamed = a.clone();
    renamed.name = "c".into();
    assert!(repo.update(&a, &renamed, enforce(&q)).await.is_err());
    repo.update(&a, &with_state(&a, SandboxState::Stopped), enforce(&q))
        .await
        .unwrap();
    assert_eq!(repo.usage(&org).await.unwrap().cpu, 0);
}
