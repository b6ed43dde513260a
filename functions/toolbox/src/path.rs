//! The two URL shapes of the toolbox proxy and the runner URL they map to.
//!
//! * `/toolbox/{sandboxId}/{path}`: what `Sandbox.toolboxProxyUrl` (`<base>/toolbox`) points to;
//!   the SDK calls `{toolboxProxyUrl}/{sandboxId}/<toolbox path>`.
//! * `/api/toolbox/{sandboxId}/toolbox/{path}`: the deprecated API route of older SDKs.
//!
//! Both forward to `{runner}/v1/sandboxes/{sandboxId}/toolbox/{path}?{query}`. The toolbox path is
//! passed on as received (still percent-encoded); a `.` or `..` segment is refused, so a request
//! can never name another sandbox's route on the runner.

use cove_api_types::ApiError;

/// The prefix of the toolbox proxy route.
pub const PROXY_PREFIX: &str = "/toolbox/";
/// The prefix of the deprecated API route.
pub const LEGACY_PREFIX: &str = "/api/toolbox/";

/// A parsed toolbox request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolboxPath {
    /// The sandbox id, percent-decoded.
    pub sandbox_id: String,
    /// The toolbox path, starting with `/` (`/` alone when empty), still percent-encoded.
    pub rest: String,
}

/// Splits a request path into the sandbox id and the toolbox path.
///
/// A path of neither shape is a 404 (no route); a dot segment is a 400.
pub fn parse(path: &str) -> Result<ToolboxPath, ApiError> {
    let no_route = || ApiError::not_found(format!("Cannot handle {path}"));
    let (id, rest) = if let Some(after) = path.strip_prefix(LEGACY_PREFIX) {
        let (id, rest) = after.split_once('/').ok_or_else(no_route)?;
        let rest = match rest.strip_prefix("toolbox") {
            Some(r) if r.is_empty() || r.starts_with('/') => r,
            _ => return Err(no_route()),
        };
        (id, rest)
    } else if let Some(after) = path.strip_prefix(PROXY_PREFIX) {
        match after.find('/') {
            Some(slash) => (&after[..slash], &after[slash..]),
            None => (after, ""),
        }
    } else {
        return Err(no_route());
    };
    let sandbox_id = cove_edge::web::percent_decode(id);
    if sandbox_id.is_empty() {
        return Err(no_route());
    }
    if rest
        .split('/')
        .map(cove_edge::web::percent_decode)
        .any(|s| s == "." || s == "..")
    {
        return Err(ApiError::bad_request(
            "Toolbox paths must not contain '.' or '..' segments",
        ));
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    Ok(ToolboxPath {
        sandbox_id,
        rest: rest.to_owned(),
    })
}

/// The runner agent URL of a toolbox call: `{api_url}/v1/sandboxes/{id}/toolbox{rest}[?query]`.
pub fn runner_url(api_url: &str, sandbox_id: &str, rest: &str, query: Option<&str>) -> String {
    let base = api_url.trim_end_matches('/');
    let id = percent_encode_segment(sandbox_id);
    match query {
        Some(q) if !q.is_empty() => format!("{base}/v1/sandboxes/{id}/toolbox{rest}?{q}"),
        _ => format!("{base}/v1/sandboxes/{id}/toolbox{rest}"),
    }
}

/// Everything but RFC 3986 unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes everything but RFC 3986 unreserved characters.
fn percent_encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> (String, String) {
        let t = parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        (t.sandbox_id, t.rest)
    }

    #[test]
    fn both_shapes_parse() {
        assert_eq!(
            ok("/toolbox/abc/process/execute"),
            ("abc".into(), "/process/execute".into())
        );
        assert_eq!(ok("/toolbox/abc"), ("abc".into(), "/".into()));
        assert_eq!(ok("/toolbox/abc/"), ("abc".into(), "/".into()));
        assert_eq!(
            ok("/api/toolbox/abc/toolbox/files/info"),
            ("abc".into(), "/files/info".into())
        );
        assert_eq!(ok("/api/toolbox/abc/toolbox"), ("abc".into(), "/".into()));
        assert_eq!(
            ok("/toolbox/a%2Db/files/a%20b"),
            ("a-b".into(), "/files/a%20b".into())
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for p in [
            "/toolbox/",
            "/toolbox",
            "/api/toolbox/abc",
            "/api/toolbox/abc/files",
            "/api/toolbox/abc/toolboxes/x",
            "/api/sandbox",
        ] {
            assert_eq!(parse(p).unwrap_err().status, 404, "{p}");
        }
        for p in [
            "/toolbox/abc/../other/toolbox/x",
            "/toolbox/abc/%2e%2E/x",
            "/toolbox/abc/./x",
            "/api/toolbox/abc/toolbox/a/../../b",
        ] {
            assert_eq!(parse(p).unwrap_err().status, 400, "{p}");
        }
    }

    #[test]
    fn runner_urls() {
        assert_eq!(
            runner_url("http://127.0.0.1:9/", "s1", "/files", Some("path=/tmp")),
            "http://127.0.0.1:9/v1/sandboxes/s1/toolbox/files?path=/tmp"
        );
        assert_eq!(
            runner_url("http://r", "a b", "/version", None),
            "http://r/v1/sandboxes/a%20b/toolbox/version"
        );
    }
}
