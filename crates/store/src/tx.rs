//! Transactions: the one place that builds `TransactWriteItems`, gives every attempt its own
//! client request token, retries lost races, and reads cancellation reasons back into what the
//! failed item meant.
//!
//! # Client request tokens
//!
//! DynamoDB treats two `TransactWriteItems` with the same `ClientRequestToken` within ten minutes as
//! one request: identical parameters are answered with success **without being applied again**,
//! other parameters fail with `IdempotentParameterMismatchException`. The SDK's default token
//! generator is a `fastrand` generator forked from a thread-local seed, and inside a Spin component
//! (a fresh instance per request, one thread, a monotonic clock that starts at zero) that seed
//! repeats across instances, so tokens repeated. Every transaction here carries a token of 122
//! bits from the platform's secure random source (`getrandom`: WASI `random` inside components),
//! fresh for each attempt of [`Tx::run`] (an attempt may carry other items than the previous one);
//! the SDK's own retries of one attempt resend the same token, which is what it is for.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use crate::item::Item;
use crate::{Conflict, Entity, Store, StoreError};

/// How often a transaction that lost a race with another one (`TransactionConflict`, throttling)
/// is tried in all.
const MAX_ATTEMPTS: u32 = 12;

/// A condition expression with its placeholders.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cond {
    expr: String,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Cond {
    pub(crate) fn new(expr: impl Into<String>) -> Self {
        Self {
            expr: expr.into(),
            ..Self::default()
        }
    }
    /// `attribute_not_exists(pk)`: the item must not exist yet.
    pub(crate) fn absent() -> Self {
        Self::new("attribute_not_exists(pk)")
    }
    /// `attribute_exists(pk)`: the item must exist.
    pub(crate) fn present() -> Self {
        Self::new("attribute_exists(pk)")
    }
    /// This condition and `expr`.
    pub(crate) fn and(mut self, expr: &str) -> Self {
        self.expr = format!("({}) AND ({expr})", self.expr);
        self
    }
    pub(crate) fn name(mut self, placeholder: &str, attr: &str) -> Self {
        self.names.push((placeholder.to_owned(), attr.to_owned()));
        self
    }
    pub(crate) fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        self.values.push((placeholder.to_owned(), v));
        self
    }
    fn names(&self) -> Option<std::collections::HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.iter().cloned().collect())
    }
    fn values(&self) -> Option<std::collections::HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.iter().cloned().collect())
    }
}

/// A conditional `Put`.
pub(crate) fn put(
    store: &Store,
    op: &'static str,
    item: Item,
    cond: Cond,
) -> Result<TransactWriteItem, StoreError> {
    let p = Put::builder()
        .table_name(store.table())
        .set_item(Some(item))
        .condition_expression(cond.expr.clone())
        .set_expression_attribute_names(cond.names())
        .set_expression_attribute_values(cond.values())
        .build()
        .map_err(|e| StoreError::builder(op, e))?;
    Ok(TransactWriteItem::builder().put(p).build())
}

/// A `Put` of an item that must not exist yet.
pub(crate) fn put_new(
    store: &Store,
    op: &'static str,
    item: Item,
) -> Result<TransactWriteItem, StoreError> {
    put(store, op, item, Cond::absent())
}

/// A `Delete`, conditional when `cond` is given.
pub(crate) fn delete(
    store: &Store,
    op: &'static str,
    key: Item,
    cond: Option<Cond>,
) -> Result<TransactWriteItem, StoreError> {
    let cond = cond.unwrap_or_default();
    let d = Delete::builder()
        .table_name(store.table())
        .set_key(Some(key))
        .set_condition_expression((!cond.expr.is_empty()).then(|| cond.expr.clone()))
        .set_expression_attribute_names(cond.names())
        .set_expression_attribute_values(cond.values())
        .build()
        .map_err(|e| StoreError::builder(op, e))?;
    Ok(TransactWriteItem::builder().delete(d).build())
}

/// A `ConditionCheck` on an item the transaction does not write.
pub(crate) fn check(
    store: &Store,
    op: &'static str,
    key: Item,
    cond: Cond,
) -> Result<TransactWriteItem, StoreError> {
    let c = ConditionCheck::builder()
        .table_name(store.table())
        .set_key(Some(key))
        .condition_expression(cond.expr.clone())
        .set_expression_attribute_names(cond.names())
        .set_expression_attribute_values(cond.values())
        .build()
        .map_err(|e| StoreError::builder(op, e))?;
    Ok(TransactWriteItem::builder().condition_check(c).build())
}

/// An `Update` built by the caller.
pub(crate) fn update(u: Update) -> TransactWriteItem {
    TransactWriteItem::builder().update(u).build()
}

/// What a refused item means, for transactions whose callers need nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    Conflict(Conflict),
    NotFound(Entity),
}

impl Fail {
    pub(crate) fn into_error(self, op: &'static str) -> StoreError {
        match self {
            Fail::Conflict(c) => StoreError::conflict(op, c),
            Fail::NotFound(e) => StoreError::not_found(op, e),
        }
    }
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub(crate) enum TxError<R> {
    /// The condition of this item failed (the first one in the transaction's order); `item` is the
    /// stored item when the write asked for it (`ReturnValuesOnConditionCheckFailure`).
    Refused {
        role: R,
        item: Option<Item>,
    },
    Store(StoreError),
}

/// One `TransactWriteItems`: its items, each with the role its caller reads failures by.
#[derive(Debug, Clone)]
pub(crate) struct Tx<R> {
    op: &'static str,
    items: Vec<(R, TransactWriteItem)>,
}

/// The outcome of one attempt.
enum Attempt<R> {
    Done,
    Retry,
    Failed(TxError<R>),
}

impl<R: Copy + PartialEq> Tx<R> {
    pub(crate) fn new(op: &'static str) -> Self {
        Self {
            op,
            items: Vec::new(),
        }
    }

    pub(crate) fn op(&self) -> &'static str {
        self.op
    }

    pub(crate) fn push(&mut self, role: R, item: TransactWriteItem) {
        self.items.push((role, item));
    }

    pub(crate) fn with(mut self, role: R, item: TransactWriteItem) -> Self {
        self.push(role, item);
        self
    }

    /// Drops the items with this role.
    pub(crate) fn remove(&mut self, role: R) {
        self.items.retain(|(r, _)| *r != role);
    }

    /// Commits, retrying with jittered backoff (and a fresh token) while it loses races with other
    /// transactions; after [`MAX_ATTEMPTS`] that is `Conflict { conflict: Contention }`.
    pub(crate) async fn run(&self, store: &Store) -> Result<(), TxError<R>> {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(store).await {
                Attempt::Done => return Ok(()),
                Attempt::Failed(e) => return Err(e),
                Attempt::Retry if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(op = self.op, attempt, "transaction conflict; retrying");
                    backoff(attempt).await;
                }
                Attempt::Retry => {}
            }
        }
        tracing::warn!(
            op = self.op,
            attempts = MAX_ATTEMPTS,
            "transaction kept conflicting"
        );
        Err(TxError::Store(StoreError::conflict(
            self.op,
            Conflict::Contention,
        )))
    }

    async fn attempt(&self, store: &Store) -> Attempt<R> {
        if let [(role, only)] = self.items.as_slice()
            && let Some(p) = only.put()
        {
            return self.put_item(store, *role, p).await;
        }
        let token = match client_request_token() {
            Ok(t) => t,
            Err(e) => return Attempt::Failed(TxError::Store(StoreError::random(self.op, e))),
        };
        let res = store
            .client()
            .transact_write_items()
            .set_transact_items(Some(self.items.iter().map(|(_, i)| i.clone()).collect()))
            .client_request_token(token)
            .send()
            .await;
        match res {
            Ok(_) => Attempt::Done,
            Err(e) => self.cancelled(e),
        }
    }

    /// A transaction of one `Put` is a conditional `PutItem` (half the cost, no token).
    async fn put_item(&self, store: &Store, role: R, p: &Put) -> Attempt<R> {
        let res = store
            .client()
            .put_item()
            .table_name(p.table_name())
            .set_item(Some(p.item().clone()))
            .set_condition_expression(p.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(p.expression_attribute_names().cloned())
            .set_expression_attribute_values(p.expression_attribute_values().cloned())
            .send()
            .await
            .map_err(|e| StoreError::backend(self.op, e));
        match res {
            Ok(_) => Attempt::Done,
            Err(StoreError::Conflict { .. }) => {
                Attempt::Failed(TxError::Refused { role, item: None })
            }
            Err(e) => Attempt::Failed(TxError::Store(e)),
        }
    }

    fn cancelled(
        &self,
        err: SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
    ) -> Attempt<R> {
        let reasons = match &err {
            SdkError::ServiceError(se) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    Some(c.cancellation_reasons().to_vec())
                }
                _ => None,
            },
            _ => None,
        };
        match reasons {
            Some(reasons) => self.classify(&reasons),
            None => Attempt::Failed(TxError::Store(StoreError::backend(self.op, err))),
        }
    }

    /// The first refused condition, else a retry when the transaction only lost a race.
    fn classify(&self, reasons: &[CancellationReason]) -> Attempt<R> {
        let refused = self
            .items
            .iter()
            .zip(reasons)
            .find(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"));
        if let Some(((role, _), reason)) = refused {
            let item = reason.item().filter(|i| !i.is_empty()).cloned();
            return Attempt::Failed(TxError::Refused { role: *role, item });
        }
        let lost_race = reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
            )
        });
        if lost_race {
            return Attempt::Retry;
        }
        let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
        Attempt::Failed(TxError::Store(StoreError::Backend {
            op: self.op,
            message: format!("transaction cancelled: {codes:?}"),
        }))
    }
}

impl Tx<Fail> {
    /// Runs the transaction; a refused item becomes the error its role names.
    pub(crate) async fn commit(&self, store: &Store) -> Result<(), StoreError> {
        match self.run(store).await {
            Ok(()) => Ok(()),
            Err(TxError::Refused { role, .. }) => Err(role.into_error(self.op)),
            Err(TxError::Store(e)) => Err(e),
        }
    }
}

/// A fresh client request token: a UUID v4 from the platform's secure random source.
pub(crate) fn client_request_token() -> Result<String, getrandom::Error> {
    crate::random::uuid_v4()
}

/// Sleeps a random time in `[1 ms, min(10 ms · 2^attempt, 640 ms))` (full jitter).
async fn backoff(attempt: u32) {
    let cap_ms = (10u64 << attempt.min(6)).min(640);
    let r = getrandom::u64().map_or(cap_ms / 2, |r| r % cap_ms);
    sleep(Duration::from_millis(r.max(1))).await;
}

#[cfg(not(target_arch = "wasm32"))]
async fn sleep(d: Duration) {
    use aws_smithy_async::rt::sleep::AsyncSleep as _;
    if let Some(s) = aws_smithy_async::rt::sleep::default_async_sleep() {
        s.sleep(d).await;
    }
}

#[cfg(target_arch = "wasm32")]
async fn sleep(d: Duration) {
    use aws_smithy_async::rt::sleep::AsyncSleep as _;
    crate::spin_http::Sleep.sleep(d).await;
}
