//! The toolbox path on the proxy's own host: `/toolbox/{sandboxId}/{path}` →
//! `{runner}/sandboxes/{sandboxId}/toolbox/{path}` (what `Sandbox.toolboxProxyUrl` points to
//! when the proxy is configured).

use crate::error::ProxyError;

/// The sandbox id (percent-decoded) and the toolbox path (from `/`, still encoded).
pub fn parse(path: &str) -> Result<Option<(String, String)>, ProxyError> {
    let Some(after) = path.strip_prefix("/toolbox/") else {
        return Ok(None);
    };
    let (id, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8_lossy()
        .into_owned();
    if id.is_empty() {
        return Ok(None);
    }
    let dots = rest.split('/').any(|s| {
        let s = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
        s == "." || s == ".."
    });
    if dots {
        return Err(ProxyError::BadRequest(
            "Toolbox paths must not contain '.' or '..' segments".into(),
        ));
    }
    Ok(Some((id, rest.to_owned())))
}

/// The toolbox operations a signed URL may call (CONTRACT §10.7), by method.
const SIGNED_OPERATIONS: [(&http::Method, &str); 2] = [
    (&http::Method::GET, "/files/download"),
    (&http::Method::POST, "/files/upload-v2"),
];

/// A request to a signed file URL: the `path`, `expires` and `signature` pairs as sent (for the
/// control plane to verify) and the query the daemon gets (`path` alone).
#[derive(Debug, PartialEq, Eq)]
pub struct Signed {
    pub pairs: String,
    pub daemon_query: String,
}

/// `Some` when the query carries a `signature` (then it must be a signed operation with one
/// `path` and one `expires`, else 401); `None` for an ordinary toolbox call.
pub fn signed(
    method: &http::Method,
    rest: &str,
    query: Option<&str>,
) -> Result<Option<Signed>, ProxyError> {
    let pairs: Vec<(&str, &str)> = query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let one = |name: &str| {
        let mut it = pairs.iter().filter(|(k, _)| *k == name);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Some(*v),
            _ => None,
        }
    };
    if !pairs.iter().any(|(k, _)| *k == "signature") {
        return Ok(None);
    }
    let refused = || ProxyError::Unauthorized("Invalid or expired signed URL".into());
    if !SIGNED_OPERATIONS.contains(&(method, rest)) {
        return Err(refused());
    }
    let (Some(path), Some(expires), Some(signature)) =
        (one("path"), one("expires"), one("signature"))
    else {
        return Err(refused());
    };
    Ok(Some(Signed {
        pairs: format!("path={path}&expires={expires}&signature={signature}"),
        daemon_query: format!("path={path}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_are_only_the_two_file_operations() {
        use http::Method;
        let q = Some("path=%2Fa%20b&expires=0&signature=v1_x");
        assert_eq!(
            signed(&Method::GET, "/files/download", q).unwrap(),
            Some(Signed {
                pairs: "path=%2Fa%20b&expires=0&signature=v1_x".into(),
                daemon_query: "path=%2Fa%20b".into(),
            })
        );
        assert!(
            signed(&Method::POST, "/files/upload-v2", q)
                .unwrap()
                .is_some()
        );
        // Another operation or method, a missing or repeated parameter: refused outright.
        for (m, rest, q) in [
            (Method::POST, "/files/download", q),
            (Method::GET, "/files/upload-v2", q),
            (Method::GET, "/process/execute", q),
            (Method::DELETE, "/files", q),
            (
                Method::GET,
                "/files/download",
                Some("path=/a&signature=v1_x"),
            ),
            (
                Method::GET,
                "/files/download",
                Some("path=/a&path=/b&expires=0&signature=v1_x"),
            ),
        ] {
            assert!(signed(&m, rest, q).is_err(), "{m} {rest} {q:?}");
        }
        assert_eq!(
            signed(&Method::GET, "/files/download", Some("path=/a")).unwrap(),
            None
        );
    }

    #[test]
    fn toolbox_paths() {
        assert_eq!(
            parse("/toolbox/abc/process/execute").unwrap(),
            Some(("abc".into(), "/process/execute".into()))
        );
        assert_eq!(
            parse("/toolbox/abc").unwrap(),
            Some(("abc".into(), "/".into()))
        );
        assert_eq!(parse("/toolbox/").unwrap(), None);
        assert_eq!(parse("/other").unwrap(), None);
        assert!(parse("/toolbox/abc/../x").is_err());
        assert!(parse("/toolbox/abc/%2e%2e/x").is_err());
    }
}
