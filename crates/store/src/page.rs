//! Cursor pagination: the cursor is the base64url of the last evaluated key, opaque to callers.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::StoreError;
use crate::item::Item;

/// An opaque position in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let c = Cursor(s.to_owned());
        c.to_key()?;
        Ok(c)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_key(key: &Item) -> Self {
        // Only string attributes ever appear in our keys.
        let map: BTreeMap<&str, &str> = key
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
            .collect();
        let json = serde_json::to_vec(&map).unwrap_or_default();
        Cursor(URL_SAFE_NO_PAD.encode(json))
    }

    pub(crate) fn to_key(&self) -> Result<Item, StoreError> {
        let raw = URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| StoreError::InvalidCursor)?;
        let map: HashMap<String, String> =
            serde_json::from_slice(&raw).map_err(|_| StoreError::InvalidCursor)?;
        if !map.contains_key("pk") || !map.contains_key("sk") || map.len() > 6 {
            return Err(StoreError::InvalidCursor);
        }
        Ok(map
            .into_iter()
            .map(|(k, v)| (k, AttributeValue::S(v)))
            .collect())
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let key = crate::item::key("ORG#1", "APIKEY#u#n");
        let c = Cursor::from_key(&key);
        assert_eq!(Cursor::parse(c.as_str()).unwrap().to_key().unwrap(), key);
        assert!(Cursor::parse("!!!").is_err());
        assert!(Cursor::parse(&URL_SAFE_NO_PAD.encode(b"{\"a\":\"b\"}")).is_err());
    }
}
