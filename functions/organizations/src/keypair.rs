//! A user's platform key pair: Ed25519, the public half in OpenSSH form (`ssh-ed25519 AAAA... cove`),
//! the private half as the base64 of its 32-byte seed. Only the store ever sees the private half.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cove_api_types::ApiError;
use cove_store::users::UserKeyPair;

const KEY_TYPE: &str = "ssh-ed25519";

/// A fresh key pair from the platform's secure random source.
pub fn generate(now: String) -> Result<UserKeyPair, ApiError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| {
        tracing::error!(error = %e, "no secure random source");
        ApiError::internal()
    })?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    Ok(UserKeyPair {
        public_key: openssh_public_key(&public),
        private_key: STANDARD.encode(seed),
        created_at: now,
    })
}

/// `ssh-ed25519 <base64(string "ssh-ed25519" || string key)> cove` (RFC 4253 §6.6, RFC 8709).
fn openssh_public_key(key: &[u8; 32]) -> String {
    let mut blob = Vec::with_capacity(4 + KEY_TYPE.len() + 4 + key.len());
    for part in [KEY_TYPE.as_bytes(), key.as_slice()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("{KEY_TYPE} {} cove", STANDARD.encode(blob))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pairs_are_fresh_and_the_public_half_matches_the_private_one() {
        let a = generate("t".into()).unwrap();
        let b = generate("t".into()).unwrap();
        assert_ne!(a.public_key, b.public_key);
        assert_ne!(a.private_key, b.private_key);
        let seed: [u8; 32] = STANDARD.decode(&a.private_key).unwrap().try_into().unwrap();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        assert_eq!(a.public_key, openssh_public_key(&public));
        let blob = STANDARD
            .decode(a.public_key.split(' ').nth(1).unwrap())
            .unwrap();
        assert_eq!(&blob[..4], &[0, 0, 0, 11]);
        assert_eq!(&blob[4..15], b"ssh-ed25519");
        assert_eq!(&blob[15..19], &[0, 0, 0, 32]);
        assert_eq!(&blob[19..], &public);
    }
}
