//! Item plumbing shared by the repositories: keys, (de)serialization, versioned writes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const META: &str = "#META";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute of an item.
pub(crate) fn get_s<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Serializes a record and adds its keys (and any index keys).
pub(crate) fn to_item<T: Serialize>(
    op: &'static str,
    record: &T,
    keys: &[(&str, String)],
) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(record).map_err(|e| StoreError::decode(op, e))?;
    for (k, v) in keys {
        item.insert((*k).to_owned(), s(v.clone()));
    }
    Ok(item)
}

/// Deserializes a record, ignoring the key attributes.
pub(crate) fn from_item<T: DeserializeOwned>(
    op: &'static str,
    item: Item,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::decode(op, e))
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}
