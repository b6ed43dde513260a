//! What a request's Host names: a preview (`{port}-{sandboxId|signedToken}.{domain}`) or the
//! proxy itself.

use crate::error::ProxyError;

/// Ports that always need credentials, even on public sandboxes (toolbox, terminal, recordings).
pub const PROTECTED_PORTS: [u16; 3] = [2280, 22222, 33333];

/// Who a preview host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sandbox(String),
    Signed(String),
}

/// A parsed preview host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub port: u16,
    pub target: Target,
}

/// `host` without a trailing `:port` (IPv6 literals kept whole).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn signed_shape(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `Ok(None)`: not a preview host (the proxy's own routes); `Err`: a preview host that is
/// malformed (bad port, empty id).
pub fn parse(host: &str, domain: &str) -> Result<Option<Preview>, ProxyError> {
    let host = strip_port(host.trim())
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let Some(label) = host
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Ok(None);
    };
    if label.contains('.') {
        return Err(ProxyError::BadRequest(format!(
            "Invalid preview host {host:?}: expected {{port}}-{{sandboxId}}.{domain}"
        )));
    }
    let (port, id) = label.split_once('-').ok_or_else(|| {
        ProxyError::BadRequest(format!(
            "Invalid preview host {host:?}: expected {{port}}-{{sandboxId}}.{domain}"
        ))
    })?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ProxyError::BadRequest(format!(
                "Invalid port {port:?} in preview host: must be an integer from 1 to 65535"
            ))
        })?;
    if id.is_empty() {
        return Err(ProxyError::BadRequest(
            "Missing sandbox id in preview host".into(),
        ));
    }
    let target = if signed_shape(id) {
        Target::Signed(id.to_owned())
    } else {
        Target::Sandbox(id.to_owned())
    };
    Ok(Some(Preview { port, target }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "preview.localhost";

    #[test]
    fn preview_hosts() {
        let id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
        assert_eq!(
            parse(&format!("8080-{id}.preview.localhost:4000"), D).unwrap(),
            Some(Preview {
                port: 8080,
                target: Target::Sandbox(id.into())
            })
        );
        assert_eq!(
            parse("3000-abcdefgh12345678.PREVIEW.localhost", D).unwrap(),
            Some(Preview {
                port: 3000,
                target: Target::Signed("abcdefgh12345678".into())
            })
        );
        assert_eq!(parse("preview.localhost:4000", D).unwrap(), None);
        assert_eq!(parse("127.0.0.1:4000", D).unwrap(), None);
        assert_eq!(parse("[::1]:4000", D).unwrap(), None);
        assert_eq!(parse("xpreview.localhost", D).unwrap(), None);
    }

    #[test]
    fn malformed_preview_hosts_are_400() {
        for h in [
            "0-abc.preview.localhost",
            "65536-abc.preview.localhost",
            "x-abc.preview.localhost",
            "+80-abc.preview.localhost",
            "8080.preview.localhost",
            "8080-.preview.localhost",
            "a.8080-abc.preview.localhost",
        ] {
            assert!(matches!(parse(h, D), Err(ProxyError::BadRequest(_))), "{h}");
        }
    }
}
