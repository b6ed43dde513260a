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

#[cfg(test)]
mod tests {
    use super::*;

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
