//! Reads of many items: one `Query` description, read page by page ([`Store::query_page`]) or to
//! its end ([`Store::query_all`]), and the full-table scan of the admin listings.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;

use crate::item::{Item, from_item, s};
use crate::table::{GSI1, GSI2, GSI3};
use crate::{Store, StoreError};

/// A key condition on the table or an index, with its placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    index: Option<&'static str>,
    key: String,
    filter: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    forward: bool,
}

impl Query {
    fn new(index: Option<&'static str>, key: &str, pk: String) -> Self {
        Self {
            index,
            key: key.to_owned(),
            filter: None,
            names: HashMap::new(),
            values: HashMap::from([(":pk".to_owned(), s(pk))]),
            forward: true,
        }
    }

    /// Every item of a partition (strongly consistent).
    pub(crate) fn partition(pk: String) -> Self {
        Self::new(None, "pk = :pk", pk)
    }

    /// The items of a partition whose sort key starts with `prefix` (strongly consistent).
    pub(crate) fn prefix(pk: String, prefix: &str) -> Self {
        Self::new(None, "pk = :pk AND begins_with(sk, :p)", pk).value(":p", s(prefix))
    }

    /// The items of a partition whose sort key sorts after `after` (strongly consistent).
    pub(crate) fn after(pk: String, after: &str) -> Self {
        Self::new(None, "pk = :pk AND sk > :after", pk).value(":after", s(after))
    }

    /// Every entry of a GSI1 partition (eventually consistent on AWS).
    pub(crate) fn gsi1(pk: impl Into<String>) -> Self {
        Self::new(Some(GSI1), "gsi1pk = :pk", pk.into())
    }

    /// The entries of a GSI1 partition whose sort key starts with `prefix`.
    pub(crate) fn gsi1_prefix(pk: String, prefix: &str) -> Self {
        Self::new(Some(GSI1), "gsi1pk = :pk AND begins_with(gsi1sk, :p)", pk).value(":p", s(prefix))
    }

    /// Every entry of a GSI2 partition (eventually consistent on AWS). DynamoDB refuses an
    /// empty `begins_with` prefix on a key, so "everything" is this, not `gsi2_prefix(pk, "")`.
    pub(crate) fn gsi2(pk: impl Into<String>) -> Self {
        Self::new(Some(GSI2), "gsi2pk = :pk", pk.into())
    }

    /// The entries of a GSI2 partition whose sort key starts with `prefix`.
    pub(crate) fn gsi2_prefix(pk: String, prefix: &str) -> Self {
        Self::new(Some(GSI2), "gsi2pk = :pk AND begins_with(gsi2sk, :p)", pk).value(":p", s(prefix))
    }

    /// The entries of a GSI3 partition whose sort key is at most `until` (eventually consistent
    /// on AWS).
    pub(crate) fn gsi3_until(pk: String, until: &str) -> Self {
        Self::new(Some(GSI3), "gsi3pk = :pk AND gsi3sk <= :until", pk).value(":until", s(until))
    }

    pub(crate) fn filter(mut self, expr: &str) -> Self {
        self.filter = Some(expr.to_owned());
        self
    }

    pub(crate) fn name(mut self, placeholder: &str, attr: &str) -> Self {
        self.names.insert(placeholder.to_owned(), attr.to_owned());
        self
    }

    pub(crate) fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), v);
        self
    }

    /// Sort keys in descending order.
    pub(crate) fn descending(mut self) -> Self {
        self.forward = false;
        self
    }

    /// The key condition's partition value (to check that a cursor belongs to this query).
    pub(crate) fn index_pk(&self) -> Option<&AttributeValue> {
        self.values.get(":pk")
    }
}

/// One page: its items and where the next one starts.
pub(crate) struct RawPage {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

impl Store {
    /// At most `limit` items after `start` (a filter applies after the limit, as in DynamoDB).
    pub(crate) async fn query_page(
        &self,
        op: &'static str,
        q: &Query,
        limit: Option<i32>,
        start: Option<Item>,
    ) -> Result<RawPage, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(self.table())
            .set_index_name(q.index.map(str::to_owned))
            .key_condition_expression(q.key.clone())
            .set_filter_expression(q.filter.clone())
            .set_expression_attribute_names((!q.names.is_empty()).then(|| q.names.clone()))
            .set_expression_attribute_values(Some(q.values.clone()))
            // GSIs can't be read consistently; the table always is.
            .set_consistent_read(q.index.is_none().then_some(true))
            .scan_index_forward(q.forward)
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::backend(op, e))?;
        Ok(RawPage {
            items: out.items.unwrap_or_default(),
            next: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    /// Every item the query matches, all pages read.
    pub(crate) async fn query_items(
        &self,
        op: &'static str,
        q: &Query,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self.query_page(op, q, None, start).await?;
            out.extend(page.items);
            match page.next {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    /// Every item the query matches, decoded.
    pub(crate) async fn query_all<T: DeserializeOwned>(
        &self,
        op: &'static str,
        q: &Query,
    ) -> Result<Vec<T>, StoreError> {
        self.query_items(op, q)
            .await?
            .into_iter()
            .map(|i| from_item(op, i))
            .collect()
    }

    /// Every item of the table matching `filter` (strongly consistent scan: admin listings and
    /// diagnostics only).
    pub(crate) async fn scan_all(
        &self,
        op: &'static str,
        filter: Option<(&str, HashMap<String, AttributeValue>)>,
    ) -> Result<Vec<Item>, StoreError> {
        let (expr, values) = filter.map_or((None, None), |(e, v)| (Some(e.to_owned()), Some(v)));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .scan()
                .table_name(self.table())
                .set_filter_expression(expr.clone())
                .set_expression_attribute_values(values.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::backend(op, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }
}
