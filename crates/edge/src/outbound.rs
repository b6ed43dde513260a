//! One buffered outbound HTTP call: `spin_sdk::http::send` inside a component (the host enforces
//! `allowed_outbound_hosts`), `reqwest` natively (tests, benchmarks). Both give up after 60 s.

use bytes::Bytes;

/// The call did not produce an HTTP answer (connection refused, DNS, timeout, host policy, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {url}: {message}")]
pub struct OutboundError {
    pub method: String,
    pub url: String,
    pub message: String,
}

impl OutboundError {
    fn new(req: &http::request::Parts, message: impl Into<String>) -> Self {
        Self {
            method: req.method.to_string(),
            url: req.uri.to_string(),
            message: message.into(),
        }
    }
}

/// Sends the request and reads the whole answer. Any status is a success here; only a failure to
/// get an answer is an error.
pub async fn send(req: http::Request<Bytes>) -> Result<http::Response<Bytes>, OutboundError> {
    imp::send(req).await
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Duration;

    use bytes::Bytes;

    use super::OutboundError;

    fn client() -> &'static reqwest::Client {
        static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
        CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        })
    }

    pub(super) async fn send(
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, OutboundError> {
        let (parts, body) = req.into_parts();
        let fail = |e: &dyn std::fmt::Display| OutboundError::new(&parts, e.to_string());
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| fail(&e))?;
        let resp = client()
            .request(parts.method.clone(), url)
            .headers(parts.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| fail(&DisplayChain(&e)))?;
        let mut out = http::Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            *h = resp.headers().clone();
        }
        let data = resp.bytes().await.map_err(|e| fail(&DisplayChain(&e)))?;
        out.body(data).map_err(|e| fail(&e))
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

    use super::OutboundError;

    pub(super) async fn send(
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, OutboundError> {
        let (parts, body) = req.into_parts();
        let err_parts = parts.clone();
        let fail = |m: String| OutboundError::new(&err_parts, m);
        let req = http::Request::from_parts(parts, FullBody::new(body));
        let call = async {
            let resp = spin_sdk::http::send(req)
                .await
                .map_err(|e| fail(format!("send: {e}")))?;
            let (parts, body) = resp.into_parts();
            let data = body
                .bytes()
                .await
                .map_err(|e| fail(format!("response body: {e:?}")))?;
            Ok(http::Response::from_parts(parts, data))
        };
        let timer = spin_sdk::wasip3::clocks::monotonic_clock::wait_for(TIMEOUT_NANOS);
        let mut call = std::pin::pin!(call);
        let mut timer = std::pin::pin!(timer);
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = call.as_mut().poll(cx) {
                return std::task::Poll::Ready(r);
            }
            timer.as_mut().poll(cx).map(|_| {
                Err(fail(format!(
                    "no answer within {} s",
                    TIMEOUT_NANOS / 1_000_000_000
                )))
            })
        })
        .await
    }

    /// Same bound as the native client.
    const TIMEOUT_NANOS: u64 = 60_000_000_000;
}
