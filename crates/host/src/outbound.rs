//! `allowed_outbound_hosts`: parsing, matching, and the `wasi:http` hook that enforces it.
//!
//! Entry syntax (Spin's): `scheme://host[:port]`, where
//! - scheme is `http`, `https` or `*`;
//! - host is a name or IP, `*` (any host) or `*.suffix` (any subdomain of `suffix`);
//! - port is a number, `*`, or a range `a..b` (end exclusive, as in Spin); when omitted
//!   it is the default port of the request's scheme (80 / 443).
//!
//! A request to a host no entry grants fails with `HttpRequestDenied` before any connection
//! is opened. Requests to `http://<component-id>.spin.internal` (and `http://self`) are
//! dispatched in-process to the application's components.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::log_throttle::{self, LogThrottle};

/// Host suffix addressing components in-process.
pub const INTERNAL_SUFFIX: &str = ".spin.internal";

static DENIED_LOG: LogThrottle = LogThrottle::new(log_throttle::WINDOW, log_throttle::BURST);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid allowed_outbound_hosts entry {entry:?}: {reason}")]
pub struct AllowedHostError {
    pub entry: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.suffix`: stores `.suffix`.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written: the default port of the request's scheme.
    SchemeDefault,
    Exact(u16),
    /// `start..end`, end exclusive.
    Range(u16, u16),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, AllowedHostError> {
        Self::parse_parts(entry).map_err(|reason| AllowedHostError {
            entry: entry.to_owned(),
            reason,
        })
    }

    fn parse_parts(entry: &str) -> Result<Self, &'static str> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or("missing scheme (write e.g. `https://example.com`)")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => SchemePattern::Any,
            s @ ("http" | "https") => SchemePattern::Exact(s.to_owned()),
            _ => return Err("scheme must be http, https or *"),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err("paths are not allowed");
        }
        let (host, port) = split_authority(authority)?;
        Ok(Self {
            scheme,
            host: parse_host(host)?,
            port: parse_port(port)?,
        })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match &self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Exact(s) => s.eq_ignore_ascii_case(scheme),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Subdomain(suffix) => {
                host.len() > suffix.len() && host.to_ascii_lowercase().ends_with(suffix.as_str())
            }
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::SchemeDefault => default_port(&scheme.to_ascii_lowercase()) == Some(port),
            PortPattern::Exact(p) => p == port,
            PortPattern::Range(a, b) => (a..b).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_authority(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unterminated IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("bad port")?),
        };
        return Ok((h, port));
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn parse_host(host: &str) -> Result<HostPattern, &'static str> {
    if host.is_empty() {
        return Err("missing host");
    }
    let host = host.to_ascii_lowercase();
    if host == "*" {
        Ok(HostPattern::Any)
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err("bad host wildcard");
        }
        Ok(HostPattern::Subdomain(format!(".{suffix}")))
    } else if host.contains('*') {
        Err("'*' is only allowed as the whole host or as a leading `*.`")
    } else {
        Ok(HostPattern::Exact(host))
    }
}

fn parse_port(port: Option<&str>) -> Result<PortPattern, &'static str> {
    match port {
        None => Ok(PortPattern::SchemeDefault),
        Some("*") => Ok(PortPattern::Any),
        Some(p) => match p.split_once("..") {
            Some((a, b)) => {
                let a: u16 = a.parse().map_err(|_| "bad port range")?;
                let b: u16 = b.parse().map_err(|_| "bad port range")?;
                if a >= b {
                    return Err("empty port range");
                }
                Ok(PortPattern::Range(a, b))
            }
            None => Ok(PortPattern::Exact(p.parse().map_err(|_| "bad port")?)),
        },
    }
}

/// A component's parsed allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    hosts: Vec<AllowedHost>,
}

impl AllowList {
    /// Parses already-expanded entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        let hosts = entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(Self { hosts })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|h| h.allows(scheme, host, port))
    }
}

/// Where an in-process request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalTarget {
    /// `http://<id>.spin.internal`
    Component(String),
    /// `http://self`: routed through the application's public routes.
    App,
}

pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send>>;

/// Dispatches requests to components in the same process (implemented by the app).
pub trait InternalDispatch: Send + Sync + 'static {
    fn dispatch(
        self: Arc<Self>,
        target: InternalTarget,
        request: http::Request<WasiBody>,
    ) -> ResponseFuture;
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

/// The `wasi:http` hooks of one component instance.
pub struct OutboundHooks {
    component: Arc<str>,
    allow: Arc<AllowList>,
    internal: Weak<dyn InternalDispatch>,
}

impl OutboundHooks {
    pub fn new(
        component: Arc<str>,
        allow: Arc<AllowList>,
        internal: Weak<dyn InternalDispatch>,
    ) -> Self {
        Self {
            component,
            allow,
            internal,
        }
    }

    fn decide(&self, uri: &http::Uri) -> Result<Option<InternalTarget>, HttpError> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .ok_or(HttpError::HttpRequestUriInvalid)?
            .to_ascii_lowercase();
        let port = match uri.port_u16().or_else(|| default_port(&scheme)) {
            Some(p) => p,
            None => return Err(HttpError::HttpRequestUriInvalid),
        };
        if !self.allow.allows(&scheme, &host, port) {
            // A component may build URLs from its callers' input: throttled.
            crate::throttled!(
                DENIED_LOG,
                tracing::Level::WARN,
                component = %self.component,
                url = %uri,
                "outbound request denied: host not in allowed_outbound_hosts"
            );
            return Err(HttpError::HttpRequestDenied);
        }
        if let Some(id) = host.strip_suffix(INTERNAL_SUFFIX) {
            return Ok(Some(InternalTarget::Component(id.to_owned())));
        }
        if host == "self" {
            return Ok(Some(InternalTarget::App));
        }
        Ok(None)
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let decision = self.decide(request.uri());
        let internal = self.internal.clone();
        Box::new(async move {
            match decision? {
                Some(target) => {
                    let app = internal
                        .upgrade()
                        .ok_or(HttpError::DestinationUnavailable)?;
                    let response = app.dispatch(target, request).await?;
                    let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                        Box::new(async { Ok(()) });
                    Ok((response, done))
                }
                None if request.uri().scheme_str() == Some("http") => {
                    pooled_send(request, options).await
                }
                None => {
                    let (response, io) =
                        wasmtime_wasi_http::default_send_request(request, options).await?;
                    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(io);
                    Ok((response.map(BodyExt::boxed_unsync), io))
                }
            }
        })
    }
}

/// Keep-alive connections to plain-HTTP hosts, shared by every instance: a fresh component
/// instance per request must not mean a fresh TCP connection per DynamoDB call.
static HTTP_POOL: std::sync::LazyLock<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        WasiBody,
    >,
> = std::sync::LazyLock::new(|| {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build(connector)
});

/// Sends a plain-HTTP request over the shared pool, honouring the guest's timeouts.
async fn pooled_send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let first_byte = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(std::time::Duration::from_secs(600));
    let response = match tokio::time::timeout(first_byte, HTTP_POOL.request(request)).await {
        Err(_) => return Err(HttpError::ConnectionReadTimeout),
        Ok(Err(e)) if e.is_connect() => return Err(HttpError::ConnectionRefused),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "outbound request failed");
            return Err(HttpError::HttpProtocolError);
        }
        Ok(Ok(r)) => r,
    };
    let response = response.map(|b| b.map_err(HttpError::from).boxed_unsync());
    let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
    Ok((response, done))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allows(entry: &str, url: &str) -> bool {
        let uri: http::Uri = url.parse().unwrap();
        let scheme = uri.scheme_str().unwrap();
        let port = uri.port_u16().or_else(|| default_port(scheme)).unwrap();
        AllowedHost::parse(entry)
            .unwrap()
            .allows(scheme, uri.host().unwrap(), port)
    }

    #[test]
    fn exact_hosts_and_default_ports() {
        assert!(allows("https://example.com", "https://example.com/x"));
        assert!(allows("https://example.com:443", "https://example.com/x"));
        assert!(allows("https://Example.COM/", "https://example.com:443/"));
        assert!(!allows("https://example.com", "http://example.com/"));
        assert!(!allows("https://example.com", "https://example.com:8443/"));
        assert!(!allows("https://example.com", "https://api.example.com/"));
        assert!(!allows("http://127.0.0.1:8080", "http://127.0.0.1:8081/"));
    }

    #[test]
    fn wildcards() {
        assert!(allows("http://127.0.0.1:*", "http://127.0.0.1:41234/"));
        assert!(allows("http://127.0.0.1:*", "http://127.0.0.1/"));
        assert!(!allows("http://127.0.0.1:*", "http://127.0.0.2:1/"));
        assert!(allows("*://example.com:*", "https://example.com:9/"));
        assert!(allows("*://example.com", "http://example.com/"));
        assert!(!allows("*://example.com", "http://example.com:8080/"));
        assert!(allows(
            "http://*.spin.internal",
            "http://api-keys.spin.internal/x"
        ));
        assert!(!allows("http://*.spin.internal", "http://spin.internal/x"));
        assert!(!allows(
            "http://*.spin.internal",
            "https://api-keys.spin.internal/x"
        ));
        assert!(allows("*://*:*", "https://anything.test:1/"));
        assert!(allows(
            "http://localhost:3000..3002",
            "http://localhost:3001/"
        ));
        assert!(!allows(
            "http://localhost:3000..3002",
            "http://localhost:3002/"
        ));
        assert!(allows("http://[::1]:8080", "http://[::1]:8080/"));
    }

    #[test]
    fn bad_entries() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://ex*ample.com",
            "https://example.com:abc",
            "https://example.com:9..3",
            "https://",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn list_matches_any_entry() {
        let l = AllowList::parse(&["https://a.test", "http://127.0.0.1:*"]).unwrap();
        assert!(l.allows("https", "a.test", 443));
        assert!(l.allows("http", "127.0.0.1", 1234));
        assert!(!l.allows("https", "b.test", 443));
        assert!(!AllowList::default().allows("https", "a.test", 443));
    }
}
