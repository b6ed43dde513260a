//! Short-lived scoped credentials that a local enforcer checks without a database.
//!
//! A credential is a signed [`Claims`] token:
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(platform secret, "cove-scoped-v1." + payload))`
//! (no padding). The platform secret is the Spin variable `scoped_credentials_secret`; the
//! `registries` component mints tokens, `cove up`'s enforcers (the embedded S3 server and the
//! registry auth gate) verify them.
//!
//! # S3 (`/api/object-storage/push-access`)
//! s3s hands `S3Auth::get_secret_key` only the access key, not the session token, so the
//! access key carries the token itself: `accessKey = "CVS" + token`, `sessionToken = token`
//! (sent by SDKs as `x-amz-security-token`, checked to match when present), and
//! `secret = hex(HMAC-SHA256(platform secret, "s3-secret:" + accessKey))`. The enforcer
//! recomputes the secret from the access key ([`s3_secret_for`]), and its access check reads the
//! claims from the access key again ([`S3Credential::parse`]): bucket = the configured one, keys
//! under `{org}/` only, not expired.
//!
//! # Registry (`/api/docker-registry/registry-push-access`)
//! `username = "cove-push-<org>"`, `password = token` (kind `registry`, scope `cove-<org>`).
//! The gate accepts it for `/v2/cove-<org>/...` only ([`verify_registry`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2_011::Sha256;

mod s3;
pub use s3::{S3_ACCESS_KEY_PREFIX, S3Credential, mint_s3, s3_secret_for};
mod registry;
pub mod sealing;
pub use registry::{
    REGISTRY_USER_PREFIX, RegistryCredential, mint_registry, project_of, verify_registry,
};

/// What a credential may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    S3,
    Registry,
}

/// The signed content of a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "k")]
    pub kind: Kind,
    /// Organization id.
    #[serde(rename = "o")]
    pub org: String,
    /// S3: the key prefix (`{org}/`); registry: the project (`cove-{org}`).
    #[serde(rename = "s")]
    pub scope: String,
    /// Expiry, unix seconds.
    #[serde(rename = "e")]
    pub exp: u64,
    /// Random, so two credentials minted in the same second differ.
    #[serde(rename = "n")]
    pub nonce: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredsError {
    #[error("malformed credential")]
    Malformed,
    #[error("bad credential signature")]
    BadSignature,
    #[error("credential expired at {exp}")]
    Expired { exp: u64 },
    #[error("credential of kind {found:?}, expected {expected:?}")]
    WrongKind { expected: Kind, found: Kind },
    #[error("credential does not cover {wanted}")]
    OutOfScope { wanted: String },
    #[error("the platform secret is empty")]
    NoSecret,
    #[error("no secure random source: {0}")]
    Random(String),
}

const DOMAIN: &str = "cove-scoped-v1.";

fn mac(secret: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, CredsError> {
    if secret.is_empty() {
        return Err(CredsError::NoSecret);
    }
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| CredsError::NoSecret)?;
    for p in parts {
        m.update(p);
    }
    Ok(m.finalize().into_bytes().to_vec())
}

fn nonce() -> Result<String, CredsError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| CredsError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

impl Claims {
    /// Claims of `kind` for `org` over `scope`, valid until `exp`, with a fresh nonce.
    pub fn new(kind: Kind, org: &str, scope: String, exp: u64) -> Result<Self, CredsError> {
        Ok(Self {
            kind,
            org: org.to_owned(),
            scope,
            exp,
            nonce: nonce()?,
        })
    }

    /// The signed token.
    pub fn sign(&self, secret: &[u8]) -> Result<String, CredsError> {
        let json = serde_json::to_vec(self).map_err(|_| CredsError::Malformed)?;
        let payload = B64.encode(json);
        let sig = mac(secret, &[DOMAIN.as_bytes(), payload.as_bytes()])?;
        Ok(format!("{payload}.{}", B64.encode(sig)))
    }

    /// Checks the signature (constant time), the kind and the expiry against `now` (unix s).
    pub fn verify(token: &str, secret: &[u8], kind: Kind, now: u64) -> Result<Self, CredsError> {
        let (payload, sig) = token.split_once('.').ok_or(CredsError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| CredsError::Malformed)?;
        if secret.is_empty() {
            return Err(CredsError::NoSecret);
        }
        let mut m =
            <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| CredsError::NoSecret)?;
        m.update(DOMAIN.as_bytes());
        m.update(payload.as_bytes());
        m.verify_slice(&sig).map_err(|_| CredsError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| CredsError::Malformed)?;
        let claims: Self = serde_json::from_slice(&json).map_err(|_| CredsError::Malformed)?;
        if claims.kind != kind {
            return Err(CredsError::WrongKind {
                expected: kind,
                found: claims.kind,
            });
        }
        if now >= claims.exp {
            return Err(CredsError::Expired { exp: claims.exp });
        }
        Ok(claims)
    }
}

/// Seconds since the unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"platform-secret";

    fn token(kind: Kind, exp: u64) -> String {
        Claims::new(kind, "org-a", "org-a/".into(), exp)
            .unwrap()
            .sign(SECRET)
            .unwrap()
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let t = token(Kind::S3, 1_000);
        let c = Claims::verify(&t, SECRET, Kind::S3, 999).unwrap();
        assert_eq!(c.org, "org-a");
        assert_eq!(c.scope, "org-a/");
        assert_eq!(
            Claims::verify(&t, SECRET, Kind::S3, 1_000),
            Err(CredsError::Expired { exp: 1_000 })
        );
    }

    #[test]
    fn nonces_make_tokens_differ() {
        assert_ne!(token(Kind::S3, 10), token(Kind::S3, 10));
    }

    #[test]
    fn tampered_payload_or_signature_is_refused() {
        let t = token(Kind::S3, 1_000);
        let (payload, sig) = t.split_once('.').unwrap();
        let json = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        let forged = B64.encode(json.replace("org-a", "org-b"));
        assert_eq!(
            Claims::verify(&format!("{forged}.{sig}"), SECRET, Kind::S3, 0),
            Err(CredsError::BadSignature)
        );
        let mut bad_sig = B64.decode(sig).unwrap();
        bad_sig[0] ^= 1;
        let t2 = format!("{payload}.{}", B64.encode(bad_sig));
        assert_eq!(
            Claims::verify(&t2, SECRET, Kind::S3, 0),
            Err(CredsError::BadSignature)
        );
        assert_eq!(
            Claims::verify(&t, b"other", Kind::S3, 0),
            Err(CredsError::BadSignature)
        );
        assert_eq!(
            Claims::verify("garbage", SECRET, Kind::S3, 0),
            Err(CredsError::Malformed)
        );
    }

    #[test]
    fn wrong_kind_is_refused() {
        let t = token(Kind::S3, 1_000);
        assert_eq!(
            Claims::verify(&t, SECRET, Kind::Registry, 0),
            Err(CredsError::WrongKind {
                expected: Kind::Registry,
                found: Kind::S3
            })
        );
    }

    #[test]
    fn an_empty_secret_signs_nothing() {
        let c = Claims::new(Kind::S3, "o", "o/".into(), 1).unwrap();
        assert_eq!(c.sign(b""), Err(CredsError::NoSecret));
    }
}
