//! The function's own variable: the proxy's service token.

use cove_edge::config::Settings;

/// What the preview function reads besides the store.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PreviewSettings {
    /// `proxy_api_key`: the bearer token of the preview proxy; `None` (unset or empty): no
    /// proxy is configured and every proxy route answers 401.
    pub proxy_api_key: Option<String>,
}

impl std::fmt::Debug for PreviewSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewSettings")
            .field("proxy_api_key", &self.proxy_api_key.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Settings for PreviewSettings {
    const VARIABLES: &'static [&'static str] = &["proxy_api_key"];

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            proxy_api_key: get("proxy_api_key")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
        }
    }
}

/// Constant-time equality of two byte strings.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_is_no_key_and_never_shown() {
        assert_eq!(
            PreviewSettings::from_lookup(|_| Some(" ".into())).proxy_api_key,
            None
        );
        let s = PreviewSettings::from_lookup(|_| Some("secret-token".into()));
        assert_eq!(s.proxy_api_key.as_deref(), Some("secret-token"));
        assert!(!format!("{s:?}").contains("secret"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
