//! One buffered outbound HTTP call: `spin_sdk::http::send` inside a component (the host enforces
//! `allowed_outbound_hosts`), `reqwest` natively (tests, benchmarks). Both give up after
//! [`TIMEOUT`], or the bound given to [`send_within`].

use std::time::Duration;

use bytes::Bytes;

/// The bound of [`send`].
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundFailure {
    /// The request never left: connection refused, DNS, host policy, an invalid URL.
    Connect,
    /// No answer within the bound.
    Timeout,
    /// Anything else (connection lost mid-request, unreadable answer).
    Other,
}

/// The call did not produce an HTTP answer (connection refused, DNS, timeout, host policy, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {url}: {message}")]
pub struct OutboundError {
    pub method: String,
    pub url: String,
    pub message: String,
    pub failure: OutboundFailure,
}

impl OutboundError {
    fn new(
        req: &http::request::Parts,
        failure: OutboundFailure,
        message: impl Into<String>,
    ) -> Self {
        Self {
            method: req.method.to_string(),
            url: req.uri.to_string(),
            message: message.into(),
            failure,
        }
    }
}

/// Sends the request and reads the whole answer within [`TIMEOUT`]. Any status is a success
/// here; only a failure to get an answer is an error.
pub async fn send(req: http::Request<Bytes>) -> Result<http::Response<Bytes>, OutboundError> {
    imp::send(req, TIMEOUT).await
}

/// [`send`] within `timeout` (connect to last byte).
pub async fn send_within(
    req: http::Request<Bytes>,
    timeout: Duration,
) -> Result<http::Response<Bytes>, OutboundError> {
    imp::send(req, timeout).await
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Duration;

    use bytes::Bytes;

    use super::{OutboundError, OutboundFailure};

    fn client() -> &'static reqwest::Client {
        static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
        CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        })
    }

    fn failure(e: &reqwest::Error) -> OutboundFailure {
        if e.is_connect() || e.is_builder() {
            OutboundFailure::Connect
        } else if e.is_timeout() {
            OutboundFailure::Timeout
        } else {
            OutboundFailure::Other
        }
    }

    pub(super) async fn send(
        req: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, OutboundError> {
        let (parts, body) = req.into_parts();
        let fail = |e: &reqwest::Error| {
            OutboundError::new(&parts, failure(e), DisplayChain(e).to_string())
        };
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| OutboundError::new(&parts, OutboundFailure::Connect, e.to_string()))?;
        let resp = client()
            .request(parts.method.clone(), url)
            .headers(parts.headers.clone())
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| fail(&e))?;
        let mut out = http::Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            *h = resp.headers().clone();
        }
        let data = resp.bytes().await.map_err(|e| fail(&e))?;
        out.body(data)
            .map_err(|e| OutboundError::new(&parts, OutboundFailure::Other, e.to_string()))
    }

    /// An error with its `source()` chain (reqwest's own message says little: "error sending request").
    struct DisplayChain<'a>(&'a dyn std::error::Error);

    impl std::fmt::Display for DisplayChain<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)?;
            let mut next = self.0.source();
            while let Some(e) = next {
                write!(f, ": {e}")?;
                next = e.source();
            }
            Ok(())
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::future::Future as _;

    use bytes::Bytes;
    use spin_sdk::http::FullBody;
    use spin_sdk::http::body::IncomingBodyExt;

    use spin_sdk::wasip3::http::types::ErrorCode;

    use super::{OutboundError, OutboundFailure};

    /// Whether the request never left the host.
    fn failure(e: &ErrorCode) -> OutboundFailure {
        match e {
            ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTimeout
            | ErrorCode::HttpRequestDenied
            | ErrorCode::HttpRequestUriInvalid => OutboundFailure::Connect,
            ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionWriteTimeout => {
                OutboundFailure::Timeout
            }
            _ => OutboundFailure::Other,
        }
    }

    pub(super) async fn send(
        req: http::Request<Bytes>,
        timeout: std::time::Duration,
    ) -> Result<http::Response<Bytes>, OutboundError> {
        let (parts, body) = req.into_parts();
        let err_parts = parts.clone();
        let fail = |f: OutboundFailure, m: String| OutboundError::new(&err_parts, f, m);
        let req = http::Request::from_parts(parts, FullBody::new(body));
        let call = async {
            let resp = spin_sdk::http::send(req)
                .await
                .map_err(|e| fail(failure(&e), format!("send: {e}")))?;
            let (parts, body) = resp.into_parts();
            let data = body
                .bytes()
                .await
                .map_err(|e| fail(OutboundFailure::Other, format!("response body: {e:?}")))?;
            Ok(http::Response::from_parts(parts, data))
        };
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let timer = spin_sdk::wasip3::clocks::monotonic_clock::wait_for(nanos);
        let mut call = std::pin::pin!(call);
        let mut timer = std::pin::pin!(timer);
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = call.as_mut().poll(cx) {
                return std::task::Poll::Ready(r);
            }
            timer.as_mut().poll(cx).map(|_| {
                Err(fail(
                    OutboundFailure::Timeout,
                    format!("no answer within {} s", timeout.as_secs_f32()),
                ))
            })
        })
        .await
    }
}
