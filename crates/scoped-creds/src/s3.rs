//! S3 credentials scoped to `{bucket}/{org}/` (see the crate docs for the encoding).

use crate::{Claims, CredsError, Kind, mac};

/// Every scoped access key starts with this; anything else is a master key.
pub const S3_ACCESS_KEY_PREFIX: &str = "CVS";

/// What `object-storage/push-access` hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credential {
    pub access_key: String,
    pub secret: String,
    pub session_token: String,
    pub claims: Claims,
}

/// Mints S3 credentials for `org`'s prefix `{org}/`, valid until `exp` (unix s).
pub fn mint_s3(secret: &[u8], org: &str, exp: u64) -> Result<S3Credential, CredsError> {
    let claims = Claims::new(Kind::S3, org, format!("{org}/"), exp)?;
    let token = claims.sign(secret)?;
    let access_key = format!("{S3_ACCESS_KEY_PREFIX}{token}");
    Ok(S3Credential {
        secret: s3_secret_for(secret, &access_key)?,
        access_key,
        session_token: token,
        claims,
    })
}

/// The SigV4 secret of a scoped access key: `hex(HMAC(secret, "s3-secret:" + accessKey))`.
pub fn s3_secret_for(secret: &[u8], access_key: &str) -> Result<String, CredsError> {
    Ok(hex::encode(mac(
        secret,
        &[b"s3-secret:", access_key.as_bytes()],
    )?))
}

impl S3Credential {
    /// Verifies a scoped access key (signature, kind, expiry at `now`) and returns its claims.
    /// `Malformed` when it is not a scoped key at all.
    pub fn parse(secret: &[u8], access_key: &str, now: u64) -> Result<Claims, CredsError> {
        let token = access_key
            .strip_prefix(S3_ACCESS_KEY_PREFIX)
            .ok_or(CredsError::Malformed)?;
        Claims::verify(token, secret, Kind::S3, now)
    }

    /// Whether `claims` allow `key` in `bucket` (the configured bucket is `allowed_bucket`).
    /// A listing passes its prefix as `key`.
    pub fn allows(claims: &Claims, allowed_bucket: &str, bucket: &str, key: &str) -> bool {
        bucket == allowed_bucket && key.starts_with(&claims.scope) && !key.contains("/../")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_enforcer_derives_the_same_secret_and_scope() {
        let c = mint_s3(b"k", "org-a", 100).unwrap();
        assert!(c.access_key.starts_with("CVS"));
        assert!(!c.access_key.contains('/'));
        assert_eq!(s3_secret_for(b"k", &c.access_key).unwrap(), c.secret);
        let claims = S3Credential::parse(b"k", &c.access_key, 50).unwrap();
        assert!(S3Credential::allows(
            &claims,
            "cove",
            "cove",
            "org-a/h/context.tar"
        ));
        assert!(!S3Credential::allows(
            &claims,
            "cove",
            "cove",
            "org-b/h/context.tar"
        ));
        assert!(!S3Credential::allows(&claims, "cove", "cove", "org-a"));
        assert!(!S3Credential::allows(&claims, "cove", "other", "org-a/x"));
        assert!(!S3Credential::allows(
            &claims,
            "cove",
            "cove",
            "org-a/../org-b/x"
        ));
        assert_eq!(
            S3Credential::parse(b"k", &c.access_key, 100),
            Err(CredsError::Expired { exp: 100 })
        );
        assert_eq!(
            S3Credential::parse(b"k", "cove", 0),
            Err(CredsError::Malformed)
        );
    }
}
