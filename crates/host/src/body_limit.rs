//! Request body limits, per component.
//!
//! A request whose `Content-Length` is past the component's limit is refused before an instance
//! is created; a body without one (chunked) is passed through a counter that fails the body with
//! `HttpRequestBodySize` once the limit is crossed, and remembers that it did so the host can
//! answer 413 whatever the component made of the error. Nothing is buffered here: frames flow
//! through as the component reads them.
//!
//! The limit comes from the component variable `max_request_body_bytes` (a plain Spin variable,
//! so the manifest stays valid for `spin up`): a number of bytes, `0` for no limit. Without it
//! the limit is [`DEFAULT_MAX_BYTES`], sized for JSON routes.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The component variable that sets a component's limit.
pub const VARIABLE: &str = "max_request_body_bytes";
/// The limit of a component that does not set one: 1 MiB of JSON plus 64 KiB of slack, so a
/// component enforcing exactly 1 MiB itself still gets to answer in its own words.
pub const DEFAULT_MAX_BYTES: u64 = (1 << 20) + (64 << 10);

/// How large a request body a component accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    Unlimited,
    Bytes(u64),
}

impl Default for BodyLimit {
    fn default() -> Self {
        Self::Bytes(DEFAULT_MAX_BYTES)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{VARIABLE} = {value:?} is not a number of bytes (0 = unlimited)")]
pub struct BodyLimitError {
    pub value: String,
}

impl BodyLimit {
    /// The limit a component's (expanded) variables set, or the default.
    pub fn from_variables(variables: &HashMap<String, String>) -> Result<Self, BodyLimitError> {
        let Some(value) = variables.get(VARIABLE) else {
            return Ok(Self::default());
        };
        match value.trim().parse::<u64>() {
            Ok(0) => Ok(Self::Unlimited),
            Ok(n) => Ok(Self::Bytes(n)),
            Err(_) => Err(BodyLimitError {
                value: value.clone(),
            }),
        }
    }

    /// The largest body in bytes, `None` when unlimited.
    pub fn max_bytes(self) -> Option<u64> {
        match self {
            Self::Unlimited => None,
            Self::Bytes(n) => Some(n),
        }
    }
}

/// A request refused on its declared length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub declared: u64,
    pub limit: u64,
}

/// Set once a body was cut off at its limit.
#[derive(Debug, Clone, Default)]
pub struct Tripped(Arc<AtomicBool>);

impl Tripped {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Refuses `request` when its `Content-Length` is past `limit`; otherwise returns it with its
/// body wrapped in the counter, and the flag that tells whether the counter cut it off.
pub fn apply(
    request: Request<WasiBody>,
    limit: BodyLimit,
) -> Result<(Request<WasiBody>, Tripped), TooLarge> {
    let tripped = Tripped::default();
    let Some(limit) = limit.max_bytes() else {
        return Ok((request, tripped));
    };
    if let Some(declared) = declared_length(&request)
        && declared > limit
    {
        return Err(TooLarge { declared, limit });
    }
    let flag = tripped.clone();
    let request = request.map(move |inner| {
        LimitedBody {
            inner,
            limit,
            received: 0,
            tripped: flag,
        }
        .boxed_unsync()
    });
    Ok((request, tripped))
}

/// The request's `Content-Length`, when it has a valid one.
fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Passes frames through until more than `limit` data bytes were seen, then fails.
struct LimitedBody {
    inner: WasiBody,
    limit: u64,
    received: u64,
    tripped: Tripped,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.tripped.is_set() {
            return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                this.received,
            )))));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            this.received = this.received.saturating_add(data.len() as u64);
            if this.received > this.limit {
                this.tripped.set();
                return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                    this.received,
                )))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn vars(value: Option<&str>) -> HashMap<String, String> {
        value
            .map(|v| HashMap::from([(VARIABLE.to_owned(), v.to_owned())]))
            .unwrap_or_default()
    }

    #[test]
    fn limit_from_the_component_variable() {
        assert_eq!(
            BodyLimit::from_variables(&vars(None)),
            Ok(BodyLimit::Bytes(DEFAULT_MAX_BYTES))
        );
        assert_eq!(
            BodyLimit::from_variables(&vars(Some("0"))),
            Ok(BodyLimit::Unlimited)
        );
        assert_eq!(
            BodyLimit::from_variables(&vars(Some(" 4096 "))),
            Ok(BodyLimit::Bytes(4096))
        );
        let e = BodyLimit::from_variables(&vars(Some("1MB"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "max_request_body_bytes = \"1MB\" is not a number of bytes (0 = unlimited)"
        );
        assert!(BodyLimit::from_variables(&vars(Some("-1"))).is_err());
    }

    fn request(body: WasiBody, content_length: Option<u64>) -> Request<WasiBody> {
        let mut b = Request::post("http://x/");
        if let Some(n) = content_length {
            b = b.header(CONTENT_LENGTH, n);
        }
        b.body(body).unwrap()
    }

    fn full(n: usize) -> WasiBody {
        Full::new(Bytes::from(vec![b'x'; n]))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// A chunked body: `chunks` frames of `size` bytes each, no declared length.
    struct Chunks {
        left: usize,
        size: usize,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = HttpError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
            let this = self.get_mut();
            if this.left == 0 {
                return Poll::Ready(None);
            }
            this.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'y'; this.size])))))
        }
    }

    fn chunked(chunks: usize, size: usize) -> WasiBody {
        Chunks { left: chunks, size }.boxed_unsync()
    }

    #[tokio::test]
    async fn declared_length_past_the_limit_is_refused_unread() {
        let r = request(full(10), Some(5_000_000));
        let e = apply(r, BodyLimit::Bytes(1000)).unwrap_err();
        assert_eq!(
            e,
            TooLarge {
                declared: 5_000_000,
                limit: 1000
            }
        );
        // Unlimited components see the same request untouched.
        let r = request(full(10), Some(5_000_000));
        let (r, tripped) = apply(r, BodyLimit::Unlimited).unwrap();
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes().len(), 10);
        assert!(!tripped.is_set());
    }

    #[tokio::test]
    async fn body_within_the_limit_passes_whole() {
        let (r, tripped) = apply(request(full(1000), Some(1000)), BodyLimit::Bytes(1000)).unwrap();
        assert_eq!(
            r.into_body().collect().await.unwrap().to_bytes().len(),
            1000
        );
        assert!(!tripped.is_set());
    }

    #[tokio::test]
    async fn chunked_body_is_cut_off_at_the_limit() {
        let (r, tripped) =
            apply(request(chunked(100, 1000), None), BodyLimit::Bytes(4500)).unwrap();
        let mut body = r.into_body();
        let mut delivered = 0;
        let error = loop {
            match body.frame().await {
                Some(Ok(f)) => delivered += f.into_data().map_or(0, |d| d.len()),
                Some(Err(e)) => break e,
                None => panic!("the body ended without hitting the limit"),
            }
        };
        assert_eq!(delivered, 4000, "no frame past the limit is delivered");
        assert!(matches!(error, HttpError::HttpRequestBodySize(Some(5000))));
        assert!(tripped.is_set());
        // Polling again keeps failing; it does not resume the stream.
        assert!(matches!(body.frame().await, Some(Err(_))));
    }
}
