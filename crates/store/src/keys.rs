//! API key material: `dtn_` + 64 hex characters (32 random bytes), stored only as its sha256.

use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "dtn_";

/// A freshly generated key and what is stored about it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// Shown once, never stored.
    pub value: String,
    pub hash: String,
    /// First three characters (`dtn`).
    pub prefix: String,
    /// Last three characters.
    pub suffix: String,
}

/// Generates a new key from the platform's secure random source.
pub fn generate() -> Result<GeneratedKey, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let value = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    Ok(GeneratedKey {
        hash: hash(&value),
        prefix: value[..3].to_owned(),
        suffix: value[value.len() - 3..].to_owned(),
        value,
    })
}

/// sha256 of the key, hex encoded: the only form in which a key is stored.
pub fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Whether a bearer token has the shape of a Cove API key.
pub fn looks_like_key(token: &str) -> bool {
    token.len() == KEY_PREFIX.len() + 64
        && token.starts_with(KEY_PREFIX)
        && token[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_daytona_shape() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.value, b.value);
        assert!(looks_like_key(&a.value));
        assert_eq!(a.value.len(), 68);
        assert_eq!(a.prefix, "dtn");
        assert_eq!(a.hash, hash(&a.value));
        assert_eq!(a.hash.len(), 64);
        assert!(!looks_like_key("dtn_xyz"));
    }
}
