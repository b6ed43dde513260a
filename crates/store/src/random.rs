//! Ids and tokens from the platform's secure random source (`getrandom`: WASI `random` inside
//! components, the OS elsewhere). Nothing here uses a seeded generator: a component instance is
//! created per request, and any per-instance seed may repeat.

/// A UUID v4 string.
pub fn uuid_v4() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    Ok(uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// `bytes` random bytes, hex encoded.
pub fn hex_token(bytes: usize) -> Result<String, getrandom::Error> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b)?;
    Ok(hex::encode(b))
}

/// `len` characters of `[a-z0-9]`, uniformly distributed.
pub fn alphanumeric(len: usize) -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf)?;
        // 252 = 7 * 36: rejection sampling keeps the characters uniform.
        for b in buf.into_iter().filter(|b| *b < 252) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 36)]));
        }
    }
    Ok(out)
}

/// Seeds the thread-local `fastrand` generator from the secure source. The AWS SDK draws its retry
/// jitter and invocation ids from it, and inside a component its default seed (a hash of the
/// monotonic clock, which starts at zero in every instance, and the thread id) repeats.
pub(crate) fn seed_fastrand() {
    if let Ok(seed) = getrandom::u64() {
        fastrand::seed(seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_uniqueness() {
        let a = uuid_v4().unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, uuid_v4().unwrap());
        assert_eq!(hex_token(32).unwrap().len(), 64);
        let t = alphanumeric(32).unwrap();
        assert_eq!(t.len(), 32);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
