//! Runners: `RUNNER#<id>` / `#META` (GSI1 `RUNNERS` / `<id>`), plus the token pointer
//! `RUNNERKEY#<sha256 of the token>` / `#META` (attribute `runnerId`), written together.
//!
//! `assignedSandboxes` is changed only by `ADD` inside the sandbox repository's transactions, so
//! every write here is an `UpdateItem` that `SET`s its own attributes (never a whole-item put
//! after creation). Choosing a runner for a sandbox is the sandboxes service's business
//! (`functions/sandboxes/src/scheduling.rs`); this module only says what a runner is.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use cove_api_types::ids::RunnerId;
use cove_api_types::runner::RunnerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::item::{META, from_item, key, n, s, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Entity, Store, StoreError};

/// A runner that has not sent a heartbeat for this long is unresponsive.
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 15;

/// The default region of runners and sandboxes.
pub const DEFAULT_REGION: &str = "us";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerRecord {
    pub id: RunnerId,
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
    pub state: RunnerState,
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
            id: RunnerId::new_random(),
            name: name.to_owned(),
            region_id: region_id.to_owned(),
            api_url: None,
            proxy_url: None,
            domain: None,
            api_key: generate_token()?,
            state: RunnerState::Initializing,
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
        self.state == RunnerState::Ready
            && self.is_responsive(now)
            && !self.unschedulable
            && !self.draining
    }

    /// Whether the runner is meant to be working (`ready` or `initializing`).
    pub fn is_live(&self) -> bool {
        matches!(self.state, RunnerState::Ready | RunnerState::Initializing)
    }

    /// The state to show: `unresponsive` when a ready/initializing runner missed its heartbeats,
    /// even before the lifecycle sweep persisted it.
    pub fn effective_state(&self, now: OffsetDateTime) -> RunnerState {
        if self.is_live() && self.last_checked.is_some() && !self.is_responsive(now) {
            RunnerState::Unresponsive
        } else {
            self.state
        }
    }

    pub fn has_snapshot(&self, snapshot: &str) -> bool {
        self.snapshots.iter().any(|s| s == snapshot)
    }
}

/// A runner token: 32 random bytes, hex.
pub fn generate_token() -> Result<String, getrandom::Error> {
    crate::random::hex_token(32)
}

/// sha256 of a runner token, hex (the key of its pointer row).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn pk(id: &RunnerId) -> String {
    format!("RUNNER#{id}")
}

fn key_pk(hash: &str) -> String {
    format!("RUNNERKEY#{hash}")
}

const GSI1_PK: &str = "RUNNERS";

/// The attributes a heartbeat sets.
const HEARTBEAT_ATTRS: [&str; 11] = [
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
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyPointer {
    runner_id: RunnerId,
}

pub struct RunnerRepo<'a> {
    pub(crate) store: &'a Store,
}

impl RunnerRepo<'_> {
    /// Stores a new runner and its token pointer in one transaction. `Conflict { Exists }` if the
    /// id or the token exists already.
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
                ("gsi1sk", rec.id.to_string()),
            ],
        )?;
        let mut pointer = key(key_pk(&token_hash(&rec.api_key)), META);
        pointer.insert("runnerId".to_owned(), s(rec.id.to_string()));
        let exists = Fail::Conflict(Conflict::Exists);
        Tx::new(OP)
            .with(exists, tx::put_new(self.store, OP, row)?)
            .with(exists, tx::put_new(self.store, OP, pointer)?)
            .commit(self.store)
            .await?;
        Ok(rec)
    }

    pub async fn get(&self, id: &RunnerId) -> Result<Option<RunnerRecord>, StoreError> {
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
        self.store
            .query_all("ListRunners", &Query::gsi1(GSI1_PK))
            .await
    }

    /// An `UpdateItem` of the runner's row, `SET`ting `updatedAt` among the caller's expressions
    /// and bumping `version`.
    fn update(&self, id: &RunnerId) -> UpdateItemFluentBuilder {
        self.store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .expression_attribute_values(":now", s(cove_api_types::time::now_rfc3339()))
            .expression_attribute_values(":one", n(1))
    }

    /// Sends `req`, conditional on the runner existing: a refusal is `NotFound`.
    async fn send_existing(
        op: &'static str,
        req: UpdateItemFluentBuilder,
    ) -> Result<Option<crate::item::Item>, StoreError> {
        match req.send().await.map_err(|e| StoreError::backend(op, e)) {
            Ok(out) => Ok(out.attributes),
            Err(StoreError::Conflict { .. }) => Err(StoreError::not_found(op, Entity::Runner)),
            Err(e) => Err(e),
        }
    }

    /// Records a heartbeat: api/proxy URL, metrics, capacity, snapshots, `lastChecked = now`, and
    /// state `ready` unless the runner is disabled or decommissioned. `NotFound` for an unknown id.
    pub async fn record_heartbeat(
        &self,
        id: &RunnerId,
        hc: &cove_runner_api::Healthcheck,
        now: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "RecordRunnerHeartbeat";
        let base = self.heartbeat_request(id, hc, now)?;
        let set = "SET #apiUrl = :api, #proxyUrl = :proxy, #domain = :domain, #appVersion = :ver, \
                   #metrics = :m, #snapshots = :snaps, #cpu = :cpu, #memoryGib = :mem, \
                   #diskGib = :disk, #lastChecked = :now, #updatedAt = :now";
        let ready = base
            .clone()
            .update_expression(format!("{set}, #st = :ready ADD version :one"))
            .condition_expression("attribute_exists(pk) AND NOT #st IN (:dis, :dec)")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":ready", s(RunnerState::Ready.as_str()))
            .expression_attribute_values(":dis", s(RunnerState::Disabled.as_str()))
            .expression_attribute_values(":dec", s(RunnerState::Decommissioned.as_str()));
        match ready.send().await.map_err(|e| StoreError::backend(OP, e)) {
            Ok(_) => return Ok(()),
            // Disabled/decommissioned (keep the state) or missing: the second pass tells which.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        let keep_state = base
            .update_expression(format!("{set} ADD version :one"))
            .condition_expression("attribute_exists(pk)");
        Self::send_existing(OP, keep_state).await.map(|_| ())
    }

    /// The heartbeat's `UpdateItem` with every name and value but the state's.
    fn heartbeat_request(
        &self,
        id: &RunnerId,
        hc: &cove_runner_api::Healthcheck,
        now: &str,
    ) -> Result<UpdateItemFluentBuilder, StoreError> {
        const OP: &str = "RecordRunnerHeartbeat";
        let attr = |v: Result<AttributeValue, serde_dynamo::Error>| {
            v.map_err(|e| StoreError::decode(OP, e))
        };
        let opt = |v: &Option<String>| v.clone().map_or(AttributeValue::Null(true), s);
        let mut req = self.update(id);
        for name in HEARTBEAT_ATTRS {
            req = req.expression_attribute_names(format!("#{name}"), name);
        }
        Ok(req
            .expression_attribute_values(":api", s(hc.api_url.clone()))
            .expression_attribute_values(":proxy", opt(&hc.proxy_url))
            .expression_attribute_values(":domain", opt(&hc.domain))
            .expression_attribute_values(":ver", s(hc.app_version.clone()))
            .expression_attribute_values(":m", attr(serde_dynamo::to_attribute_value(&hc.metrics))?)
            .expression_attribute_values(
                ":snaps",
                attr(serde_dynamo::to_attribute_value(&hc.snapshots))?,
            )
            .expression_attribute_values(":cpu", num(f64::from(hc.metrics.cpu)))
            .expression_attribute_values(":mem", num(hc.metrics.memory_gib))
            .expression_attribute_values(":disk", num(hc.metrics.disk_gib))
            // The heartbeat's own time, in place of the one `update` set.
            .expression_attribute_values(":now", s(now)))
    }

    /// Sets `unschedulable`; returns the updated runner. `NotFound` for an unknown id.
    pub async fn set_unschedulable(
        &self,
        id: &RunnerId,
        unschedulable: bool,
    ) -> Result<RunnerRecord, StoreError> {
        self.set_flag("SetRunnerUnschedulable", id, "unschedulable", unschedulable)
            .await
    }

    /// Sets `draining`; returns the updated runner. `NotFound` for an unknown id.
    pub async fn set_draining(
        &self,
        id: &RunnerId,
        draining: bool,
    ) -> Result<RunnerRecord, StoreError> {
        self.set_flag("SetRunnerDraining", id, "draining", draining)
            .await
    }

    async fn set_flag(
        &self,
        op: &'static str,
        id: &RunnerId,
        attr: &str,
        value: bool,
    ) -> Result<RunnerRecord, StoreError> {
        let req = self
            .update(id)
            .update_expression("SET #a = :v, updatedAt = :now ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", AttributeValue::Bool(value))
            .return_values(ReturnValue::AllNew);
        let attrs = Self::send_existing(op, req).await?;
        from_item(op, attrs.unwrap_or_default())
    }

    /// Sets the state. `NotFound` for an unknown id.
    pub async fn set_state(&self, id: &RunnerId, new_state: RunnerState) -> Result<(), StoreError> {
        let req = self
            .update(id)
            .update_expression("SET #st = :st, updatedAt = :now ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", s(new_state.as_str()));
        Self::send_existing("SetRunnerState", req).await.map(|_| ())
    }

    /// Marks a runner `unresponsive` only if it is still in `state_seen` with the heartbeat
    /// `last_checked_seen` (a heartbeat landing meanwhile wins). Returns whether this call changed it.
    pub async fn mark_unresponsive(
        &self,
        id: &RunnerId,
        state_seen: RunnerState,
        last_checked_seen: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "MarkRunnerUnresponsive";
        let res = self
            .update(id)
            .update_expression("SET #st = :st, updatedAt = :now ADD version :one")
            .condition_expression("#st = :seen AND lastChecked = :lc")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", s(RunnerState::Unresponsive.as_str()))
            .expression_attribute_values(":seen", s(state_seen.as_str()))
            .expression_attribute_values(":lc", s(last_checked_seen))
            .send()
            .await
            .map_err(|e| StoreError::backend(OP, e));
        match res {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a runner and its token pointer. Without `force`, refuses
    /// (`Conflict { RunnerHasSandboxes }`) while sandboxes are assigned to it. `NotFound` for an
    /// unknown id.
    pub async fn delete(&self, id: &RunnerId, force: bool) -> Result<(), StoreError> {
        const OP: &str = "DeleteRunner";
        let Some(rec) = self.get(id).await? else {
            return Err(StoreError::not_found(OP, Entity::Runner));
        };
        let (role, cond) = if force {
            (Fail::NotFound(Entity::Runner), Cond::present())
        } else {
            let idle = "attribute_exists(pk) AND (attribute_not_exists(assignedSandboxes) \
                        OR assignedSandboxes <= :zero)";
            let cond = Cond::new(idle).value(":zero", n(0));
            (Fail::Conflict(Conflict::RunnerHasSandboxes), cond)
        };
        let pointer = key(key_pk(&token_hash(&rec.api_key)), META);
        Tx::new(OP)
            .with(
                role,
                tx::delete(self.store, OP, key(pk(id), META), Some(cond))?,
            )
            .with(role, tx::delete(self.store, OP, pointer, None)?)
            .commit(self.store)
            .await
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

    #[test]
    fn effective_state_turns_unresponsive_after_the_timeout() {
        let mut r = RunnerRecord::new("a", DEFAULT_REGION, NOW).unwrap();
        r.state = RunnerState::Ready;
        r.last_checked = Some("2026-01-01T00:00:55.000Z".to_owned());
        assert_eq!(r.effective_state(at(NOW)), RunnerState::Ready);
        assert!(r.is_schedulable(at(NOW)));
        r.last_checked = Some("2026-01-01T00:00:44.000Z".to_owned());
        assert_eq!(r.effective_state(at(NOW)), RunnerState::Unresponsive);
        assert!(!r.is_schedulable(at(NOW)));
        r.state = RunnerState::Disabled;
        assert_eq!(r.effective_state(at(NOW)), RunnerState::Disabled);
    }

    #[test]
    fn tokens_are_32_random_bytes_hex() {
        let a = generate_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, generate_token().unwrap());
        assert_eq!(token_hash(&a).len(), 64);
    }
}
