//! Secrets at rest (registry passwords): AES-256-GCM under a key derived from the platform
//! secret (`HMAC-SHA256(secret, "cove-seal-v1")`), stored as
//! `v1.` + base64url(12-byte nonce ‖ ciphertext ‖ tag).

use aes_gcm::aead::{Aead, KeyInit as _};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::{CredsError, mac};

const VERSION: &str = "v1.";

fn cipher(secret: &[u8]) -> Result<Aes256Gcm, CredsError> {
    let key = mac(secret, &[b"cove-seal-v1"])?;
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)))
}

/// Encrypts `plaintext`; `associated` (e.g. the row's org and id) must be given again to open it.
pub fn seal(secret: &[u8], plaintext: &str, associated: &str) -> Result<String, CredsError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| CredsError::Random(e.to_string()))?;
    let payload = aes_gcm::aead::Payload {
        msg: plaintext.as_bytes(),
        aad: associated.as_bytes(),
    };
    let ct = cipher(secret)?
        .encrypt(Nonce::from_slice(&nonce), payload)
        .map_err(|_| CredsError::Malformed)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!("{VERSION}{}", B64.encode(out)))
}

/// Decrypts what [`seal`] produced under the same secret and `associated` data.
pub fn open(secret: &[u8], sealed: &str, associated: &str) -> Result<String, CredsError> {
    let raw = sealed
        .strip_prefix(VERSION)
        .and_then(|b| B64.decode(b).ok())
        .filter(|r| r.len() > 12)
        .ok_or(CredsError::Malformed)?;
    let (nonce, ct) = raw.split_at(12);
    let payload = aes_gcm::aead::Payload {
        msg: ct,
        aad: associated.as_bytes(),
    };
    let pt = cipher(secret)?
        .decrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| CredsError::BadSignature)?;
    String::from_utf8(pt).map_err(|_| CredsError::Malformed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let s = seal(b"k", "hunter2", "org/id").unwrap();
        assert!(!s.contains("hunter2"));
        assert_ne!(s, seal(b"k", "hunter2", "org/id").unwrap());
        assert_eq!(open(b"k", &s, "org/id").unwrap(), "hunter2");
        assert_eq!(open(b"other", &s, "org/id"), Err(CredsError::BadSignature));
        assert_eq!(open(b"k", &s, "org/other"), Err(CredsError::BadSignature));
        assert_eq!(open(b"k", "v1.AAAA", "org/id"), Err(CredsError::Malformed));
    }
}
