//! The sandbox transactions: the row, its name lock, the organization's usage counters and the
//! runner's count, written together (see the module docs of [`super`]).

use cove_api_types::ids::{OrganizationId, RunnerId, SandboxId};

use super::due;
use super::events::{SandboxEventRecord, event_item};
use super::usage::{self, QuotaCheck, SandboxUsage};
use super::{BACKUP_REMOVAL_PK, SandboxRecord, SandboxRepo, list_pk, name_sk, pk, runner_pk};
use crate::item::{Item, META, from_item, key, n, s, to_item};
use crate::orgs::OrgQuota;
use crate::tx::{self, Cond, Tx, TxError};
use crate::{Conflict, Entity, Store, StoreError};

/// How often a refused transaction is tried again (the usage totals moved between the write and
/// the read that explains its refusal, or the runner row went away).
const MAX_REFUSALS: u32 = 8;

/// What each item of a sandbox transaction is, to read its refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Sandbox,
    NameLock,
    NameRelease,
    OrgLive,
    Usage,
    RunnerInc,
    RunnerDec,
    /// The outbox item of the write (its key is new: refused only when this very write was
    /// already applied, which the sandbox row's condition reports first).
    Event,
}

/// A sandbox transaction and what its refusals need.
struct Write<'a> {
    tx: Tx<Role>,
    /// The usage change (to tell which resource ran out).
    delta: SandboxUsage,
    org: &'a OrganizationId,
    check: QuotaCheck<'a>,
    /// What a refused sandbox row means: it exists already (create) or changed (update).
    row_refused: Conflict,
}

/// What to do about a refused item.
enum Next {
    Fail(StoreError),
    Retry,
    DropRunnerDec,
}

impl SandboxRepo<'_> {
    /// One transaction: put the sandbox (it must not exist: `Conflict { Exists }`), take its name
    /// lock (taken → `Conflict { SandboxNameTaken }`) in an organization that is live (gone or
    /// being deleted → `Conflict { OrganizationDeleting }`), add its consumption to the
    /// organization's usage within `quota` (a user action → `QuotaExceeded`) and count it on its
    /// runner (missing runner → `NotFound { Runner }`). Returns the record as stored (version 1).
    pub async fn create(
        &self,
        rec: &SandboxRecord,
        quota: &OrgQuota,
    ) -> Result<SandboxRecord, StoreError> {
        const OP: &str = "CreateSandbox";
        let store = self.store;
        let mut stored = rec.clone();
        stored.version = 1;
        let mut t = Tx::new(OP).with(
            Role::Sandbox,
            tx::put_new(store, OP, item(store, OP, &stored)?)?,
        );
        if let Some(name) = stored.held_name() {
            t.push(Role::NameLock, name_lock(store, OP, &stored, name)?);
            t.push(
                Role::OrgLive,
                crate::orgs::live_check(store, OP, &stored.org_id)?,
            );
        }
        let delta = stored.consumption();
        let check = QuotaCheck::Enforce(quota);
        if let Some(u) = usage::usage_update(store, OP, &stored.org_id, delta, check)? {
            t.push(Role::Usage, u);
        }
        if let Some(r) = stored.counted_runner() {
            t.push(Role::RunnerInc, runner_add(store, OP, r, 1)?);
        }
        push_event(store, &mut t, None, &stored)?;
        let w = Write {
            tx: t,
            delta,
            org: &stored.org_id,
            check,
            row_refused: Conflict::Exists,
        };
        self.commit(w).await?;
        tracing::debug!(sandbox = %stored.id, org = %stored.org_id, "sandbox created");
        Ok(stored)
    }

    /// Replaces `prev` by `next` in one transaction that also moves the usage counters by the
    /// difference of consumption (growing totals checked as `check` says → `QuotaExceeded`),
    /// moves the name lock when the name changes or the sandbox is destroyed (a taken name →
    /// `Conflict { SandboxNameTaken }`) and moves the runner count when the runner changes or the
    /// sandbox is destroyed. The row must still be `prev` (its version, state and sizes, which the
    /// usage difference was computed from): `Conflict { Changed }` otherwise.
    /// Returns `next` as stored, with `version = prev.version + 1`.
    pub async fn update(
        &self,
        prev: &SandboxRecord,
        next: &SandboxRecord,
        check: QuotaCheck<'_>,
    ) -> Result<SandboxRecord, StoreError> {
        self.update_when(prev, next, check, still(prev)).await
    }

    /// [`Self::update`], also conditional on `prev`'s `lastActivityAt` (which
    /// [`Self::touch_activity`] moves without a new version): the lifecycle sweep's write of an
    /// action due to idleness loses to activity that landed since it read the row.
    pub async fn update_if_idle(
        &self,
        prev: &SandboxRecord,
        next: &SandboxRecord,
        check: QuotaCheck<'_>,
    ) -> Result<SandboxRecord, StoreError> {
        let cond = still(prev)
            .and("lastActivityAt = :la")
            .value(":la", s(&prev.last_activity_at));
        self.update_when(prev, next, check, cond).await
    }

    async fn update_when(
        &self,
        prev: &SandboxRecord,
        next: &SandboxRecord,
        check: QuotaCheck<'_>,
        cond: Cond,
    ) -> Result<SandboxRecord, StoreError> {
        const OP: &str = "UpdateSandbox";
        if prev.id != next.id || prev.org_id != next.org_id {
            return Err(StoreError::builder(
                OP,
                "a sandbox's id and organization can't change",
            ));
        }
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let row = tx::put(self.store, OP, item(self.store, OP, &stored)?, cond)?;
        let mut t = Tx::new(OP).with(Role::Sandbox, row);
        self.move_name(&mut t, prev, &stored)?;
        let delta = stored.consumption().minus(prev.consumption());
        if let Some(u) = usage::usage_update(self.store, OP, &stored.org_id, delta, check)? {
            t.push(Role::Usage, u);
        }
        self.move_runner(&mut t, prev, &stored)?;
        push_event(self.store, &mut t, Some(prev), &stored)?;
        let w = Write {
            tx: t,
            delta,
            org: &stored.org_id,
            check,
            row_refused: Conflict::Changed,
        };
        self.commit(w).await?;
        Ok(stored)
    }

    /// Deletes the row of a sandbox that never ran (its runner refused the create) in one
    /// transaction with the release of its name lock, the return of its usage and its runner
    /// count, so nothing of it is left. The row must still be `prev`: `Conflict { Changed }`
    /// otherwise.
    pub async fn discard(&self, prev: &SandboxRecord) -> Result<(), StoreError> {
        const OP: &str = "DiscardSandbox";
        let row = tx::delete(self.store, OP, key(pk(&prev.id), META), Some(still(prev)))?;
        let mut t = Tx::new(OP).with(Role::Sandbox, row);
        if let Some(name) = prev.held_name() {
            t.push(Role::NameRelease, name_release(self.store, OP, prev, name)?);
        }
        let delta = SandboxUsage::default().minus(prev.consumption());
        let check = QuotaCheck::Record;
        if let Some(u) = usage::usage_update(self.store, OP, &prev.org_id, delta, check)? {
            t.push(Role::Usage, u);
        }
        if let Some(r) = prev.counted_runner() {
            t.push(Role::RunnerDec, runner_add(self.store, OP, r, -1)?);
        }
        let w = Write {
            tx: t,
            delta,
            org: &prev.org_id,
            check,
            row_refused: Conflict::Changed,
        };
        self.commit(w).await?;
        tracing::debug!(sandbox = %prev.id, org = %prev.org_id, "sandbox discarded");
        Ok(())
    }

    /// Releases `prev`'s name lock and takes `next`'s when they differ.
    fn move_name(
        &self,
        t: &mut Tx<Role>,
        prev: &SandboxRecord,
        next: &SandboxRecord,
    ) -> Result<(), StoreError> {
        let op = t.op();
        if prev.held_name() == next.held_name() {
            return Ok(());
        }
        if let Some(old) = prev.held_name() {
            t.push(Role::NameRelease, name_release(self.store, op, prev, old)?);
        }
        if let Some(new) = next.held_name() {
            t.push(Role::NameLock, name_lock(self.store, op, next, new)?);
            t.push(
                Role::OrgLive,
                crate::orgs::live_check(self.store, op, &next.org_id)?,
            );
        }
        Ok(())
    }

    /// Moves the runner count when the counted runner changes.
    fn move_runner(
        &self,
        t: &mut Tx<Role>,
        prev: &SandboxRecord,
        next: &SandboxRecord,
    ) -> Result<(), StoreError> {
        let op = t.op();
        if prev.counted_runner() == next.counted_runner() {
            return Ok(());
        }
        if let Some(r) = prev.counted_runner() {
            t.push(Role::RunnerDec, runner_add(self.store, op, r, -1)?);
        }
        if let Some(r) = next.counted_runner() {
            t.push(Role::RunnerInc, runner_add(self.store, op, r, 1)?);
        }
        Ok(())
    }

    /// Sets `lastActivityAt = now` when the stored value is older than `older_than` (and than
    /// `now`): one conditional `UpdateItem`, a no-op otherwise (also when the sandbox is gone).
    /// Does not bump `version`, so it never makes a concurrent [`Self::update`] fail.
    pub async fn touch_activity(
        &self,
        id: &SandboxId,
        now: &str,
        older_than: &str,
    ) -> Result<(), StoreError> {
        let res = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .update_expression("SET lastActivityAt = :now")
            .condition_expression(
                "attribute_exists(pk) AND lastActivityAt < :older AND lastActivityAt < :now",
            )
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":older", s(older_than))
            .send()
            .await
            .map_err(|e| StoreError::backend("TouchSandboxActivity", e));
        match res {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rewrites the due-time index key of `rec` from the row as it is (an activity moved its due
    /// time later, see [`super::due`]), conditional on its version and `lastActivityAt`; no new
    /// version. `false`: the row changed meanwhile (its own write re-indexed it).
    pub async fn reindex(&self, rec: &SandboxRecord) -> Result<bool, StoreError> {
        const OP: &str = "ReindexSandbox";
        let req = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(&rec.id), META)))
            .condition_expression("version = :v AND lastActivityAt = :la")
            .expression_attribute_values(":v", n(rec.version))
            .expression_attribute_values(":la", s(&rec.last_activity_at));
        let req = match due::index_keys(rec, self.store.lifecycle_minute()) {
            Some((gpk, gsk)) => req
                .update_expression("SET gsi3pk = :gpk, gsi3sk = :gsk")
                .expression_attribute_values(":gpk", s(gpk))
                .expression_attribute_values(":gsk", s(gsk)),
            None => req.update_expression("REMOVE gsi3pk, gsi3sk"),
        };
        match req.send().await.map_err(|e| StoreError::backend(OP, e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs the transaction and turns a refusal into the error of the item that failed.
    async fn commit(&self, mut w: Write<'_>) -> Result<(), StoreError> {
        for _ in 0..MAX_REFUSALS {
            let (role, item) = match w.tx.run(self.store).await {
                Ok(()) => return Ok(()),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Refused { role, item }) => (role, item),
            };
            match self.refused(&w, role, item).await? {
                Next::Fail(e) => return Err(e),
                Next::Retry => {}
                // The runner row is gone: nothing left to count on.
                Next::DropRunnerDec => w.tx.remove(Role::RunnerDec),
            }
        }
        Err(StoreError::conflict(w.tx.op(), Conflict::Contention))
    }

    async fn refused(
        &self,
        w: &Write<'_>,
        role: Role,
        item: Option<Item>,
    ) -> Result<Next, StoreError> {
        let op = w.tx.op();
        let conflict = |c| Next::Fail(StoreError::conflict(op, c));
        Ok(match role {
            Role::Sandbox => conflict(w.row_refused),
            Role::NameLock => conflict(Conflict::SandboxNameTaken),
            Role::OrgLive => conflict(Conflict::OrganizationDeleting),
            // The old name is held by another sandbox: the record we were given is not stored.
            Role::NameRelease => conflict(Conflict::Changed),
            Role::RunnerInc => Next::Fail(StoreError::not_found(op, Entity::Runner)),
            Role::RunnerDec => Next::DropRunnerDec,
            Role::Event => Next::Retry,
            Role::Usage => {
                let current = match item {
                    Some(i) => from_item::<SandboxUsage>(op, i)?,
                    None => self.usage(w.org).await?,
                };
                let QuotaCheck::Enforce(quota) = w.check else {
                    return Ok(Next::Retry);
                };
                usage::exceeded(w.delta, current, quota).map_or(Next::Retry, Next::Fail)
            }
        })
    }
}

/// The row with its index keys: list and runner index while not destroyed; once destroyed, the
/// backup-removal index while its backups are still on a runner; the due-time index while
/// something is due for it.
fn item(store: &Store, op: &'static str, rec: &SandboxRecord) -> Result<Item, StoreError> {
    let mut keys = vec![("pk", pk(&rec.id)), ("sk", META.to_owned())];
    if let Some((gpk, gsk)) = due::index_keys(rec, store.lifecycle_minute()) {
        keys.push(("gsi3pk", gpk));
        keys.push(("gsi3sk", gsk));
    }
    if rec.has_backups_to_remove() {
        keys.push(("gsi1pk", BACKUP_REMOVAL_PK.to_owned()));
        keys.push(("gsi1sk", rec.id.to_string()));
    }
    if !rec.is_destroyed() {
        keys.push(("gsi1pk", list_pk(&rec.org_id)));
        keys.push(("gsi1sk", format!("{}#{}", rec.created_at, rec.id)));
        if let Some(r) = &rec.runner_id {
            keys.push(("gsi2pk", runner_pk(r)));
            keys.push(("gsi2sk", pk(&rec.id)));
        }
    }
    to_item(op, rec, &keys)
}

/// Adds the outbox item of the write `prev` → `next` (`None`: create) when it creates the
/// sandbox or changes its `state` or `desiredState` (see [`super::events`]).
fn push_event(
    store: &Store,
    t: &mut Tx<Role>,
    prev: Option<&SandboxRecord>,
    next: &SandboxRecord,
) -> Result<(), StoreError> {
    let op = t.op();
    if let Some(ev) = SandboxEventRecord::of_write(prev, next, time::OffsetDateTime::now_utc()) {
        t.push(Role::Event, tx::put_new(store, op, event_item(op, &ev)?)?);
    }
    Ok(())
}

/// The stored row is still `prev`: its version, and the state and sizes its consumption is
/// computed from.
fn still(prev: &SandboxRecord) -> Cond {
    Cond::new("version = :v AND #st = :st AND cpu = :cpu AND memory = :mem AND disk = :disk")
        .name("#st", "state")
        .value(":v", n(prev.version))
        .value(":st", s(prev.state.as_str()))
        .value(":cpu", n(prev.cpu))
        .value(":mem", n(prev.memory))
        .value(":disk", n(prev.disk))
}

fn name_lock(
    store: &Store,
    op: &'static str,
    rec: &SandboxRecord,
    name: &str,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    let mut lock = key(crate::orgs::pk(&rec.org_id), name_sk(name));
    lock.insert("sandboxId".into(), s(rec.id.to_string()));
    tx::put_new(store, op, lock)
}

fn name_release(
    store: &Store,
    op: &'static str,
    rec: &SandboxRecord,
    name: &str,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    tx::delete(
        store,
        op,
        key(crate::orgs::pk(&rec.org_id), name_sk(name)),
        Some(
            Cond::new("attribute_not_exists(pk) OR sandboxId = :id")
                .value(":id", s(rec.id.to_string())),
        ),
    )
}

fn runner_add(
    store: &Store,
    op: &'static str,
    runner: &RunnerId,
    by: i64,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    let u = aws_sdk_dynamodb::types::Update::builder()
        .table_name(store.table())
        .set_key(Some(key(runner_pk(runner), META)))
        .update_expression("ADD assignedSandboxes :by")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":by", n(by))
        .build()
        .map_err(|e| StoreError::builder(op, e))?;
    Ok(tx::update(u))
}
