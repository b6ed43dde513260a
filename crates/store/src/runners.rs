//! Runners: `RUNNER#<id>` / `#META` (GSI1 `RUNNERS` / `<id>`), plus the token pointer
//! `RUNNERKEY#<sha256 of the token>` / `#META` (attribute `runnerId`), written together.
//!
//! `assignedSandboxes` is changed only by `ADD` inside the sandbox repository's transactions, so
//! every write here is an `UpdateItem` that `SET`s its own attributes (never a whole-item put
//! after creation).

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::item::{Item, META, from_item, key, s, to_item};
use crate::memberships::builder_err;
use crate::table::GSI1;
use crate::{Store, StoreError};

/// A runner that has not sent a heartbeat for this long is unresponsive.
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 15;

/// Runner states (Daytona's `RunnerState` strings).
pub mod state {
    pub const INITIALIZING: &str = "initializing";
    pub const READY: &str = "ready";
    pub const DISABLED: &str = "disabled";
    pub const DECOMMISSIONED: &str = "decommissioned";
    pub const UNRESPONSIVE: &str = "unresponsive";
    pub const ALL: [&str; 5] = [INITIALIZING, READY, DISABLED, DECOMMISSIONED, UNRESPONSIVE];
}

/// The default region of runners and sandboxes.
pub const DEFAULT_REGION: &str = "us";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerRecord {
    pub id: String,
    pub name: String,
    pub region_id: String,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    /// The runner token: the agent authenticates with it, the control plane presents it to the agent.
    pub api_key: String,
    pub state: String,
    #[serde(default)]
    pub unschedulable: bool,
    #[serde(default)]
    pub draining: bool,
    #[serde(default)]
    pub cpu: f64,
    #[serde(default)]
    pub memory_gib: f64,
    #[serde(default)]
    pub disk_gib: f64,
    #[serde(default)]
    pub metrics: Option<cove_runner_api::RunnerMetrics>,
    #[serde(default)]
    pub snapshots: Vec<String>,
    #[serde(default)]
    pub assigned_sandboxes: i64,
    #[serde(default)]
    pub last_checked: Option<String>,
    #[serde(default)]
    pub app_version: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub version: u64,
}

impl RunnerRecord {
    /// A new runner in `initializing` with a fresh id and token.
    pub fn new(name: &str, region_id: &str, now: &str) -> Result<Self, getrandom::Error> {
        Ok(Self {
            id: uuid_v4()?,
            name: name.to_owned(),
            region_id: region_id.to_owned(),
            api_url: None,
            proxy_url: None,
            domain: None,
            api_key: generate_token()?,
            state: state::INITIALIZING.to_owned(),
            unschedulable: false,
            draining: false,
            cpu: 0.0,
            memory_gib: 0.0,
            disk_gib: 0.0,
            metrics: None,
            snapshots: Vec::new(),
            assigned_sandboxes: 0,
            last_checked: None,
            app_version: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            version: 0,
        })
    }

    /// Whether the last heartbeat is within [`HEARTBEAT_TIMEOUT_SECS`] of `now`.
    pub fn is_responsive(&self, now: OffsetDateTime) -> bool {
        self.last_checked
            .as_deref()
            .and_then(cove_api_types::time::parse_rfc3339)
            .is_some_and(|t| (now - t).whole_seconds() < HEARTBEAT_TIMEOUT_SECS)
    }

    /// Ready, responsive, and neither unschedulable nor draining.
    pub fn is_schedulable(&self, now: OffsetDateTime) -> bool {
        self.state == state::READY
            && self.is_responsive(now)
            && !self.unschedulable
            && !self.draining
    }

    /// The state to show: `unresponsive` when a ready/initializing runner missed its heartbeats,
    /// even before the lifecycle sweep persisted it.
    pub fn effective_state(&self, now: OffsetDateTime) -> &str {
        let live = self.state == state::READY || self.state == state::INITIALIZING;
        if live && self.last_checked.is_some() && !self.is_responsive(now) {
            state::UNRESPONSIVE
        } else {
            &self.state
        }
    }

    pub fn has_snapshot(&self, snapshot: &str) -> bool {
        self.snapshots.iter().any(|s| s == snapshot)
    }
}

/// A runner token: 32 random bytes, hex.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(hex::encode(b))
}

/// sha256 of a runner token, hex (the key of its pointer row).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn uuid_v4() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Picks a runner for a new sandbox: ready and schedulable runners of `region`; among them those that
/// already have `snapshot` if any; then the fewest assigned sandboxes; ties broken at random.
pub fn pick_runner<'a>(
    runners: &'a [RunnerRecord],
    snapshot: &str,
    region: &str,
    now: OffsetDateTime,
) -> Option<&'a RunnerRecord> {
    let eligible: Vec<&RunnerRecord> = runners
        .iter()
        .filter(|r| r.region_id == region && r.is_schedulable(now))
        .collect();
    let with_snapshot: Vec<&RunnerRecord> = eligible
        .iter()
        .copied()
        .filter(|r| r.has_snapshot(snapshot))
        .collect();
    let pool = if with_snapshot.is_empty() {
        eligible
    } else {
        with_snapshot
    };
    let least = pool.iter().map(|r| r.assigned_sandboxes).min()?;
    let best: Vec<&RunnerRecord> = pool
        .into_iter()
        .filter(|r| r.assigned_sandboxes == least)
        .collect();
    let i = getrandom::u32().unwrap_or(0) as usize % best.len();
    best.get(i).copied()
}

pub(crate) fn pk(id: &str) -> String {
    format!("RUNNER#{id}")
}

fn key_pk(hash: &str) -> String {
    format!("RUNNERKEY#{hash}")
}

const GSI1_PK: &str = "RUNNERS";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyPointer {
    runner_id: String,
}

pub struct RunnerRepo<'a> {
    pub(crate) store: &'a Store,
}

impl RunnerRepo<'_> {
    /// Stores a new runner and its token pointer in one transaction. `Conflict` if the id or the
    /// token exists already.
    pub async fn create(&self, rec: &RunnerRecord) -> Result<RunnerRecord, StoreError> {
        const OP: &str = "CreateRunner";
        let mut rec = rec.clone();
        rec.version = 1;
        let row = to_item(
            OP,
            &rec,
            &[
                ("pk", pk(&rec.id)),
                ("sk", META.to_owned()),
                ("gsi1pk", GSI1_PK.to_owned()),
                ("gsi1sk", rec.id.clone()),
            ],
        )?;
        let mut pointer = key(key_pk(&token_hash(&rec.api_key)), META);
        pointer.insert("runnerId".to_owned(), s(rec.id.clone()));
        let table = self.store.table();
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let p = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| builder_err(OP, e))?;
            Ok(TransactWriteItem::builder().put(p).build())
        };
        self.store
            .client()
            .transact_write_items()
            .transact_items(put(row)?)
            .transact_items(put(pointer)?)
            .send()
            .await
            .map_err(|e| StoreError::backend(OP, e))?;
        Ok(rec)
    }

    pub async fn get(&self, id: &str) -> Result<Option<RunnerRecord>, StoreError> {
        self.store.get_record("GetRunner", key(pk(id), META)).await
    }

    /// The runner a token belongs to (two strongly consistent reads).
    pub async fn get_by_api_key(&self, token: &str) -> Result<Option<RunnerRecord>, StoreError> {
        let ptr: Option<KeyPointer> = self
            .store
            .get_record("GetRunnerKey", key(key_pk(&token_hash(token)), META))
            .await?;
        match ptr {
            Some(p) => self.get(&p.runner_id).await,
            None => Ok(None),
        }
    }

    /// Every runner (GSI1, eventually consistent on AWS), sorted by id.
    pub async fn list(&self) -> Result<Vec<RunnerRecord>, StoreError> {
        const OP: &str = "ListRunners";
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(GSI1_PK))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend(OP, e))?;
            for i in page.items.unwrap_or_default() {
                out.push(from_item(OP, i)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Records a heartbeat: api/proxy URL, metrics, capacity, snapshots, `lastChecked = now`, and
    /// state `ready` unless the runner is disabled or decommissioned. `NotFound` for an unknown id.
    pub async fn record_heartbeat(
        &self,
        id: &str,
        hc: &cove_runner_api::Healthcheck,
        now: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "RecordRunnerHeartbeat";
        let metrics = serde_dynamo::to_attribute_value::<_, AttributeValue>(&hc.metrics)
            .map_err(|e| StoreError::decode(OP, e))?;
        let snapshots = serde_dynamo::to_attribute_value::<_, AttributeValue>(&hc.snapshots)
            .map_err(|e| StoreError::decode(OP, e))?;
        let opt = |v: &Option<String>| v.clone().map_or(AttributeValue::Null(true), s);
        let base = "SET #apiUrl = :api, #proxyUrl = :proxy, #domain = :domain, #appVersion = :ver, \
                    #metrics = :m, #snapshots = :snaps, #cpu = :cpu, #memoryGib = :mem, \
                    #diskGib = :disk, #lastChecked = :now, #updatedAt = :now";
        for with_state in [true, false] {
            let mut req = self
                .store
                .client()
                .update_item()
                .table_name(self.store.table())
                .set_key(Some(key(pk(id), META)));
            for name in [
                "apiUrl",
                "proxyUrl",
                "domain",
                "appVersion",
                "metrics",
                "snapshots",
                "cpu",
                "memoryGib",
                "diskGib",
                "lastChecked",
                "updatedAt",
            ] {
                req = req.expression_attribute_names(format!("#{name}"), name);
            }
            req = req
                .expression_attribute_values(":api", s(hc.api_url.clone()))
                .expression_attribute_values(":proxy", opt(&hc.proxy_url))
                .expression_attribute_values(":domain", opt(&hc.domain))
                .expression_attribute_values(":ver", s(hc.app_version.clone()))
                .expression_attribute_values(":m", metrics.clone())
                .expression_attribute_values(":snaps", snapshots.clone())
                .expression_attribute_values(":cpu", num(f64::from(hc.metrics.cpu)))
                .expression_attribute_values(":mem", num(hc.metrics.memory_gib))
                .expression_attribute_values(":disk", num(hc.metrics.disk_gib))
                .expression_attribute_values(":now", s(now))
                .expression_attribute_values(":one", AttributeValue::N("1".into()));
            req = if with_state {
                req.update_expression(format!("{base}, #st = :ready ADD version :one"))
                    .condition_expression("attribute_exists(pk) AND NOT #st IN (:dis, :dec)")
                    .expression_attribute_names("#st", "state")
                    .expression_attribute_values(":ready", s(state::READY))
                    .expression_attribute_values(":dis", s(state::DISABLED))
                    .expression_attribute_values(":dec", s(state::DECOMMISSIONED))
            } else {
                req.update_expression(format!("{base} ADD version :one"))
                    .condition_expression("attribute_exists(pk)")
            };
            match req.send().await.map_err(|e| StoreError::backend(OP, e)) {
                Ok(_) => return Ok(()),
                // Disabled/decommissioned (keep the state) or missing: the second pass tells which.
                Err(StoreError::Conflict { .. }) if with_state => continue,
                Err(StoreError::Conflict { .. }) => return Err(StoreError::NotFound { op: OP }),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets `unschedulable`; returns the updated runner. `NotFound` for an unknown id.
    pub async fn set_unschedulable(
        &self,
        id: &str,
        unschedulable: bool,
    ) -> Result<RunnerRecord, StoreError> {
        self.set_flag("SetRunnerUnschedulable", id, "unschedulable", unschedulable)
            .await
    }

    /// Sets `draining`; returns the updated runner. `NotFound` for an unknown id.
    pub async fn set_draining(&self, id: &str, draining: bool) -> Result<RunnerRecord, StoreError> {
        self.set_flag("SetRunnerDraining", id, "draining", draining)
            .await
    }

    async fn set_flag(
        &self,
        op: &'static str,
        id: &str,
        attr: &str,
        value: bool,
    ) -> Result<RunnerRecord, StoreError> {
        let out = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET #a = :v, updatedAt = :now ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", AttributeValue::Bool(value))
            .expression_attribute_values(":now", s(cove_api_types::time::now_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| StoreError::backend(op, e));
        match out {
            Ok(o) => from_item(op, o.attributes.unwrap_or_default()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::NotFound { op }),
            Err(e) => Err(e),
        }
    }

    /// Sets the state. `NotFound` for an unknown id.
    pub async fn set_state(&self, id: &str, new_state: &str) -> Result<(), StoreError> {
        const OP: &str = "SetRunnerState";
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET #st = :st, updatedAt = :now ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", s(new_state))
            .expression_attribute_values(":now", s(cove_api_types::time::now_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(|e| StoreError::backend(OP, e));
        match res {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::NotFound { op: OP }),
            Err(e) => Err(e),
        }
    }

    /// Marks a runner `unresponsive` only if it is still in `state_seen` with the heartbeat
    /// `last_checked_seen` (a heartbeat landing meanwhile wins). Returns whether this call changed it.
    pub async fn mark_unresponsive(
        &self,
        id: &str,
        state_seen: &str,
        last_checked_seen: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "MarkRunnerUnresponsive";
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET #st = :st, updatedAt = :now ADD version :one")
            .condition_expression("#st = :seen AND lastChecked = :lc")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", s(state::UNRESPONSIVE))
            .expression_attribute_values(":seen", s(state_seen))
            .expression_attribute_values(":lc", s(last_checked_seen))
            .expression_attribute_values(":now", s(cove_api_types::time::now_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(|e| StoreError::backend(OP, e));
        match res {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a runner and its token pointer. Without `force`, refuses (`Conflict`) while sandboxes
    /// are assigned to it. `NotFound` for an unknown id.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), StoreError> {
        const OP: &str = "DeleteRunner";
        let Some(rec) = self.get(id).await? else {
            return Err(StoreError::NotFound { op: OP });
        };
        let table = self.store.table();
        let cond = if force {
            "attribute_exists(pk)"
        } else {
            "attribute_exists(pk) AND (attribute_not_exists(assignedSandboxes) OR assignedSandboxes <= :zero)"
        };
        let mut row = Delete::builder()
            .table_name(table)
            .set_key(Some(key(pk(id), META)))
            .condition_expression(cond);
        if !force {
            row = row.expression_attribute_values(":zero", AttributeValue::N("0".into()));
        }
        let row = row.build().map_err(|e| builder_err(OP, e))?;
        let pointer = Delete::builder()
            .table_name(table)
            .set_key(Some(key(key_pk(&token_hash(&rec.api_key)), META)))
            .build()
            .map_err(|e| builder_err(OP, e))?;
        self.store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(row).build())
            .transact_items(TransactWriteItem::builder().delete(pointer).build())
            .send()
            .await
            .map_err(|e| StoreError::backend(OP, e))?;
        Ok(())
    }
}

fn num(v: f64) -> AttributeValue {
    AttributeValue::N(if v.is_finite() {
        v.to_string()
    } else {
        "0".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        cove_api_types::time::parse_rfc3339(s).unwrap()
    }

    const NOW: &str = "2026-01-01T00:01:00.000Z";

    fn runner(id: &str, assigned: i64, snapshots: &[&str]) -> RunnerRecord {
        let mut r = RunnerRecord::new(id, DEFAULT_REGION, NOW).unwrap();
        r.id = id.to_owned();
        r.state = state::READY.to_owned();
        r.last_checked = Some("2026-01-01T00:00:55.000Z".to_owned());
        r.assigned_sandboxes = assigned;
        r.snapshots = snapshots.iter().map(|s| (*s).to_owned()).collect();
        r
    }

    #[test]
    fn prefers_runners_having_the_snapshot() {
        let rs = [runner("a", 0, &[]), runner("b", 7, &["img:1"])];
        assert_eq!(pick_runner(&rs, "img:1", "us", at(NOW)).unwrap().id, "b");
        // Nobody has it: least loaded.
        assert_eq!(pick_runner(&rs, "img:2", "us", at(NOW)).unwrap().id, "a");
    }

    #[test]
    fn prefers_least_assigned_and_spreads_ties() {
        let rs = [
            runner("a", 3, &["i"]),
            runner("b", 1, &["i"]),
            runner("c", 2, &["i"]),
        ];
        assert_eq!(pick_runner(&rs, "i", "us", at(NOW)).unwrap().id, "b");
        let tie = [runner("a", 1, &["i"]), runner("b", 1, &["i"])];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(pick_runner(&tie, "i", "us", at(NOW)).unwrap().id.clone());
        }
        assert_eq!(seen.len(), 2, "ties are broken at random");
    }

    #[test]
    fn skips_runners_that_must_not_get_sandboxes() {
        let mut unsched = runner("unsched", 0, &["i"]);
        unsched.unschedulable = true;
        let mut draining = runner("draining", 0, &["i"]);
        draining.draining = true;
        let mut stale = runner("stale", 0, &["i"]);
        stale.last_checked = Some("2026-01-01T00:00:30.000Z".to_owned());
        let mut never = runner("never", 0, &["i"]);
        never.last_checked = None;
        let mut unresp = runner("unresp", 0, &["i"]);
        unresp.state = state::UNRESPONSIVE.to_owned();
        let mut disabled = runner("disabled", 0, &["i"]);
        disabled.state = state::DISABLED.to_owned();
        let mut eu = runner("eu", 0, &["i"]);
        eu.region_id = "eu".to_owned();
        let all = vec![unsched, draining, stale, never, unresp, disabled, eu];
        assert!(pick_runner(&all, "i", "us", at(NOW)).is_none());
        assert_eq!(pick_runner(&all, "i", "eu", at(NOW)).unwrap().id, "eu");
        let mut with_ok = all.clone();
        with_ok.push(runner("ok", 50, &[]));
        assert_eq!(pick_runner(&with_ok, "i", "us", at(NOW)).unwrap().id, "ok");
    }

    #[test]
    fn effective_state_turns_unresponsive_after_the_timeout() {
        let mut r = runner("a", 0, &[]);
        assert_eq!(r.effective_state(at(NOW)), "ready");
        r.last_checked = Some("2026-01-01T00:00:44.000Z".to_owned());
        assert_eq!(r.effective_state(at(NOW)), "unresponsive");
        assert!(!r.is_schedulable(at(NOW)));
        r.state = state::DISABLED.to_owned();
        assert_eq!(r.effective_state(at(NOW)), "disabled");
    }

    #[test]
    fn tokens_are_32_random_bytes_hex() {
        let a = generate_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, generate_token().unwrap());
        assert_eq!(token_hash(&a).len(), 64);
        assert_eq!(uuid_v4().unwrap().len(), 36);
    }
}
