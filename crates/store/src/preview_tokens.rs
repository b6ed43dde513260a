//! Signed preview URL tokens: `PREVIEWTOKEN#<token>` / `#META`.
//!
//! A token (16 characters of `[a-z0-9]`, CONTRACT §9) names one sandbox and one port until
//! `expiresAt`. Rows are written once and read by the token; an expired row is treated as
//! absent ([`PreviewTokenRepo::get_live`]) and carries `ttl` (epoch seconds) so that a table
//! with DynamoDB TTL enabled on `ttl` drops it. Expiring a token early deletes its row.

use cove_api_types::ids::SandboxId;
use serde::{Deserialize, Serialize};

use crate::item::{META, key, to_item};
use crate::{Store, StoreError};

/// Length of a signed preview token.
pub const TOKEN_LEN: usize = 16;

/// One signed preview URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewTokenRecord {
    pub token: String,
    pub sandbox_id: SandboxId,
    pub port: u16,
    /// RFC 3339.
    pub expires_at: String,
    /// Epoch seconds of `expires_at` (DynamoDB TTL attribute).
    pub ttl: i64,
    pub created_at: String,
}

impl PreviewTokenRecord {
    /// A new record with a fresh token, valid for `seconds` from `now`.
    pub fn new(
        sandbox_id: SandboxId,
        port: u16,
        now: time::OffsetDateTime,
        seconds: i64,
    ) -> Result<Self, StoreError> {
        let token = crate::random::alphanumeric(TOKEN_LEN)
            .map_err(|e| StoreError::random("CreatePreviewToken", e))?;
        let expires = now + time::Duration::seconds(seconds);
        Ok(Self {
            token,
            sandbox_id,
            port,
            expires_at: cove_api_types::time::format_rfc3339(expires),
            ttl: expires.unix_timestamp(),
            created_at: cove_api_types::time::format_rfc3339(now),
        })
    }

    /// Whether the token still works at `now`.
    pub fn is_live(&self, now: time::OffsetDateTime) -> bool {
        now.unix_timestamp() < self.ttl
    }
}

fn pk(token: &str) -> String {
    format!("PREVIEWTOKEN#{token}")
}

/// Whether `s` has the shape of a signed preview token.
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Signed preview tokens.
pub struct PreviewTokenRepo<'a> {
    pub(crate) store: &'a Store,
}

impl PreviewTokenRepo<'_> {
    /// Stores a new token (a token that exists already is a conflict).
    pub async fn create(&self, rec: &PreviewTokenRecord) -> Result<(), StoreError> {
        let item = to_item(
            "CreatePreviewToken",
            rec,
            &[("pk", pk(&rec.token)), ("sk", META.to_owned())],
        )?;
        self.store.put_new("CreatePreviewToken", item).await
    }

    /// The token's record while it is live; `None` when unknown or expired.
    pub async fn get_live(
        &self,
        token: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<PreviewTokenRecord>, StoreError> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let rec: Option<PreviewTokenRecord> = self
            .store
            .get_record("GetPreviewToken", key(pk(token), META))
            .await?;
        Ok(rec.filter(|r| r.is_live(now)))
    }

    /// Deletes the token (expires it now); idempotent.
    pub async fn delete(&self, token: &str) -> Result<(), StoreError> {
        if !looks_like_token(token) {
            return Ok(());
        }
        self.store
            .client()
            .delete_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(token), META)))
            .send()
            .await
            .map_err(|e| StoreError::backend("DeletePreviewToken", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_contract_shape_and_expire() {
        let now = time::OffsetDateTime::now_utc();
        let rec = PreviewTokenRecord::new(SandboxId::new_random(), 8080, now, 60).unwrap();
        assert!(looks_like_token(&rec.token), "{}", rec.token);
        assert!(rec.is_live(now));
        assert!(!rec.is_live(now + time::Duration::seconds(60)));
        assert!(!looks_like_token("ABCDEFGHIJKLMNOP"));
        assert!(!looks_like_token("short"));
    }
}
