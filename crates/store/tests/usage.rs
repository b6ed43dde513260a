//! The organizations' usage counters stay exact whoever changes a sandbox's state: user actions
//! (quota enforced), recorded states (runner reports, sweeps, settles), placements on runners,
//! renames, destroys (also of sandboxes whose runner is gone) and organization deletion.
//! (dynoxide by default, DynamoDB Local when `COVE_TEST_DYNAMODB_ENDPOINT` is set.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId, UserId};
use cove_api_types::sandbox::SandboxState;
use cove_store::orgs::{OrgQuota, OrgRecord};
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::{QuotaCheck, SandboxRecord, SandboxUsage};
use cove_store::{Resource, Store, StoreError};

const TASKS: usize = 8;
const OPS_PER_TASK: usize = 40;

fn quota(cpu: i64, memory: i64, disk: i64) -> OrgQuota {
    OrgQuota {
        total_cpu_quota: cpu,
        total_memory_quota: memory,
        total_disk_quota: disk,
        ..OrgQuota::default()
    }
}

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

async fn new_runner(store: &Store) -> RunnerId {
    let rec = RunnerRecord::new("r", "us", &cove_api_types::time::now_rfc3339()).unwrap();
    store.runners().create(&rec).await.unwrap().id
}

fn sandbox(
    org: &OrganizationId,
    name: &str,
    state: SandboxState,
    sizes: (i64, i64, i64),
) -> SandboxRecord {
    let now = cove_api_types::time::now_rfc3339();
    let mut r = SandboxRecord::new(SandboxId::new_random(), org.clone(), name, "img", &now);
    (r.cpu, r.memory, r.disk) = sizes;
    r.state = state;
    r
}

/// The sum, over every sandbox row of `org`, of what its state holds (strongly consistent reads).
async fn recomputed(store: &Store, org: &OrganizationId) -> SandboxUsage {
    let mut sum = SandboxUsage::default();
    for (pk, _) in store.scan_keys().await.unwrap() {
        let Some(id) = pk.strip_prefix("SANDBOX#") else {
            continue;
        };
        let rec = store
            .sandboxes()
            .get(&SandboxId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        if rec.org_id == *org {
            sum = sum.plus(rec.consumption());
        }
    }
    sum
}

/// The states a sandbox row moves through (destroying it is drawn apart, rarely).
const STATES: [SandboxState; 11] = [
    SandboxState::Creating,
    SandboxState::Started,
    SandboxState::Starting,
    SandboxState::Stopping,
    SandboxState::Stopped,
    SandboxState::Archiving,
    SandboxState::Archived,
    SandboxState::Error,
    SandboxState::Unknown,
    SandboxState::Restoring,
    SandboxState::Destroying,
];

/// One random change of one random sandbox through one of the store's paths (`false`: nothing to
/// change, it is destroyed). Refusals (a lost race, a quota, a taken name) are part of the mix.
async fn random_change(
    store: &Store,
    rng: &mut fastrand::Rng,
    pool: &[(OrganizationId, OrgQuota, SandboxId)],
    runners: &[RunnerId],
) -> Result<bool, StoreError> {
    let (org, q, id) = &pool[rng.usize(..pool.len())];
    let repo = store.sandboxes();
    if rng.u8(..20) == 0 {
        // A create (a user action), by a name that may be taken.
        let state = STATES[rng.usize(..STATES.len())];
        let name = format!("n{}", rng.u8(..8));
        let mut rec = sandbox(org, &name, state, (1, 1, 1));
        rec.runner_id = runners.first().cloned();
        return repo.create(&rec, q).await.map(|_| true);
    }
    let Some(prev) = repo.get(id).await? else {
        return Ok(false);
    };
    if prev.is_destroyed() {
        return Ok(false);
    }
    let mut next = prev.clone();
    next.state = if rng.u8(..40) == 0 {
        SandboxState::Destroyed
    } else {
        STATES[rng.usize(..STATES.len())]
    };
    match rng.u8(..10) {
        // A placement move (sometimes off any runner, as archive does).
        0 => next.runner_id = runners.get(rng.usize(..=runners.len())).cloned(),
        // A rename into a small name space: collisions happen.
        1 => next.name = format!("n{}", rng.u8(..6)),
        _ => {}
    }
    if next.is_destroyed() {
        next.name = format!("DESTROYED_{}_{}", prev.name, rng.u32(..));
    }
    let check = if rng.bool() {
        QuotaCheck::Enforce(q)
    } else {
        QuotaCheck::Record
    };
    debug_assert_eq!(&prev.org_id, org);
    repo.update(&prev, &next, check).await.map(|_| true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_mix_of_every_path_leaves_the_counters_exact() {
    let store = cove_testkit::store().await;
    let runners = vec![new_runner(&store).await, new_runner(&store).await];
    let mut pool = Vec::new();
    for q in [quota(6, 8, 40), quota(100, 100, 100)] {
        let org = new_org(&store).await;
        for i in 0..6 {
            let mut rec = sandbox(
                &org,
                &format!("n{i}"),
                SandboxState::Stopped,
                (1 + i % 3, 2, 3),
            );
            rec.runner_id = Some(runners[i as usize % 2].clone());
            let rec = store.sandboxes().create(&rec, &q).await.unwrap();
            pool.push((org.clone(), q.clone(), rec.id));
        }
    }
    let seed = getrandom::u64().unwrap();
    println!("seed {seed}");
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|t| {
            let (store, pool, runners) = (store.clone(), pool.clone(), runners.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed ^ t);
                let (mut applied, mut conflicts, mut over) = (0, 0, 0);
                for _ in 0..OPS_PER_TASK {
                    match random_change(&store, &mut rng, &pool, &runners).await {
                        Ok(true) => applied += 1,
                        Ok(false) => {}
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(StoreError::QuotaExceeded { .. }) => over += 1,
                        Err(e) => panic!("seed {seed}: {e:?}"),
                    }
                }
                (applied, conflicts, over)
            })
        })
        .collect();
    let (mut applied, mut conflicts, mut over) = (0, 0, 0);
    for t in tasks {
        let (a, c, q) = t.await.unwrap();
        applied += a;
        conflicts += c;
        over += q;
    }
    println!("{applied} changes applied, {conflicts} lost races or taken names, {over} over quota");
    assert!(
        applied > TASKS * OPS_PER_TASK / 10 && conflicts > 0,
        "too few changes applied ({applied}) or no races ({conflicts})"
    );
    let orgs: Vec<OrganizationId> = vec![pool[0].0.clone(), pool[6].0.clone()];
    for org in &orgs {
        assert_eq!(
            store.sandboxes().usage(org).await.unwrap(),
            recomputed(&store, org).await,
            "seed {seed}: counters of {org} after {applied} changes"
        );
    }
    runner_counts_are_exact(&store, &runners).await;
    destroy_all_and_delete(&store, &pool, &orgs).await;
}

/// Each runner's `assignedSandboxes` is the number of sandboxes that are not destroyed on it.
async fn runner_counts_are_exact(store: &Store, runners: &[RunnerId]) {
    let mut want: HashMap<RunnerId, i64> = runners.iter().map(|r| (r.clone(), 0)).collect();
    for (pk, _) in store.scan_keys().await.unwrap() {
        if let Some(id) = pk.strip_prefix("SANDBOX#") {
            let id = SandboxId::parse(id).unwrap();
            let rec = store.sandboxes().get(&id).await.unwrap().unwrap();
            if let (false, Some(r)) = (rec.is_destroyed(), rec.runner_id) {
                *want.entry(r).or_default() += 1;
            }
        }
    }
    for r in runners {
        let got = store.runners().get(r).await.unwrap().unwrap();
        assert_eq!(got.assigned_sandboxes, want[r], "runner {r}");
    }
}

/// Forced destroys of every sandbox (most with their runner row gone), then the organizations' deletion: nothing is
/// counted any more, and deleting leaves no counters behind.
async fn destroy_all_and_delete(
    store: &Store,
    pool: &[(OrganizationId, OrgQuota, SandboxId)],
    orgs: &[OrganizationId],
) {
    let repo = store.sandboxes();
    let ids: Vec<SandboxId> = store
        .scan_keys()
        .await
        .unwrap()
        .iter()
        .filter_map(|(pk, _)| pk.strip_prefix("SANDBOX#"))
        .map(|id| SandboxId::parse(id).unwrap())
        .collect();
    assert!(ids.len() >= pool.len());
    for id in &ids {
        let prev = repo.get(id).await.unwrap().unwrap();
        if prev.is_destroyed() {
            continue;
        }
        if let Some(r) = &prev.runner_id {
            // A runner deleted by an admin while it still had sandboxes.
            let _ = store.runners().delete(r, true).await;
        }
        let mut next = prev.clone();
        next.state = SandboxState::Destroyed;
        next.name = format!("DESTROYED_{}", prev.id);
        repo.update(&prev, &next, QuotaCheck::Record).await.unwrap();
    }
    for org in orgs {
        assert_eq!(repo.usage(org).await.unwrap(), SandboxUsage::default());
        store.orgs().delete(org).await.unwrap();
        assert_eq!(repo.usage(org).await.unwrap(), SandboxUsage::default());
        assert_eq!(recomputed(store, org).await, SandboxUsage::default());
    }
    let left: Vec<_> = store
        .scan_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|(pk, _)| pk.starts_with("ORG#"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Recorded states follow reality past the quota; user actions that would grow a total are then
/// refused, while the ones that shrink usage always pass.
#[tokio::test]
async fn recorded_states_may_exceed_the_quota_user_actions_may_not() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let q = quota(2, 100, 100);
    let a = repo
        .create(&sandbox(&org, "a", SandboxState::Started, (2, 1, 1)), &q)
        .await
        .unwrap();
    let b = repo
        .create(&sandbox(&org, "b", SandboxState::Stopped, (1, 1, 1)), &q)
        .await
        .unwrap();
    let c = repo
        .create(&sandbox(&org, "c", SandboxState::Stopped, (1, 1, 1)), &q)
        .await
        .unwrap();
    // The runner says b is running after all: recorded, and now over the CPU quota.
    let mut b_started = b.clone();
    b_started.state = SandboxState::Started;
    let b = repo
        .update(&b, &b_started, QuotaCheck::Record)
        .await
        .unwrap();
    assert_eq!(repo.usage(&org).await.unwrap().cpu, 3);
    // Starting c is a user action that grows the CPU total: refused.
    let mut c_started = c.clone();
    c_started.state = SandboxState::Starting;
    let err = repo
        .update(&c, &c_started, QuotaCheck::Enforce(&q))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                resource: Resource::Cpu,
                limit: 2
            }
        ),
        "{err:?}"
    );
    // A change that keeps usage (labels) and one that shrinks it (stop) pass.
    let mut labelled = a.clone();
    labelled.labels.insert("k".into(), "v".into());
    repo.update(&a, &labelled, QuotaCheck::Enforce(&q))
        .await
        .unwrap();
    let mut b_stopped = b.clone();
    b_stopped.state = SandboxState::Stopped;
    repo.update(&b, &b_stopped, QuotaCheck::Enforce(&q))
        .await
        .unwrap();
    assert_eq!(
        repo.usage(&org).await.unwrap(),
        recomputed(&store, &org).await
    );
    assert_eq!(repo.usage(&org).await.unwrap().cpu, 2);
}

/// A write whose `prev` is not what is stored (same version, another state) is refused: the usage
/// difference is always computed from the stored row.
#[tokio::test]
async fn a_doctored_prev_cannot_skew_the_counters() {
    let store = cove_testkit::store().await;
    let repo = store.sandboxes();
    let org = new_org(&store).await;
    let q = quota(10, 10, 10);
    let a = repo
        .create(&sandbox(&org, "a", SandboxState::Started, (2, 2, 2)), &q)
        .await
        .unwrap();
    let mut doctored = a.clone();
    doctored.state = SandboxState::Stopped;
    let mut next = a.clone();
    next.state = SandboxState::Archived;
    let err = repo
        .update(&doctored, &next, QuotaCheck::Record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(repo.usage(&org).await.unwrap().cpu, 2);
}
