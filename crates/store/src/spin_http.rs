//! A smithy `HttpClient` over `spin_sdk::http::send` (WASIp3), and an `AsyncSleep` on the WASIp3
//! monotonic clock: `aws-smithy-wasm` only speaks WASIp2, spin-sdk 7 components speak WASIp3.
#![allow(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_async::rt::sleep::{AsyncSleep, Sleep as SmithySleep};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use spin_sdk::http::FullBody;
use spin_sdk::http::body::IncomingBodyExt;

/// wasm32 is single-threaded, so the WASIp3 futures (which are `!Send`) can never actually cross
/// threads; smithy's traits still demand `Send`.
struct AssertSend<F>(F);
// SAFETY: wasm32-wasip2 has exactly one thread; the value is never observed from another one.
unsafe impl<F> Send for AssertSend<F> {}
// SAFETY: as above.
unsafe impl<F> Sync for AssertSend<F> {}

impl<F: Future> Future for AssertSend<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Sleep;

impl AsyncSleep for Sleep {
    fn sleep(&self, d: Duration) -> SmithySleep {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        SmithySleep::new(AssertSend(
            spin_sdk::wasip3::clocks::monotonic_clock::wait_for(nanos),
        ))
    }
}

#[derive(Debug, Clone)]
struct SpinClient;

pub(crate) fn client() -> SharedHttpClient {
    SpinClient.into_shared()
}

impl HttpClient for SpinClient {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SpinClient)
    }
}

impl HttpConnector for SpinClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(AssertSend(async move {
            let other = |e: String| ConnectorError::other(e.into(), None);
            let req = request
                .try_into_http1x()
                .map_err(|e| other(e.to_string()))?;
            let (parts, body) = req.into_parts();
            // DynamoDB payloads are small JSON documents: buffer them.
            let bytes = body
                .bytes()
                .map(bytes::Bytes::copy_from_slice)
                .unwrap_or_default();
            let req = http::Request::from_parts(parts, FullBody::new(bytes));
            let resp = spin_sdk::http::send(req)
                .await
                .map_err(|e| other(format!("send: {e}")))?;
            let (parts, body) = resp.into_parts();
            let data = body
                .bytes()
                .await
                .map_err(|e| other(format!("response body: {e:?}")))?;
            let resp = http::Response::from_parts(parts, SdkBody::from(data));
            aws_smithy_runtime_api::http::Response::try_from(resp).map_err(|e| other(e.to_string()))
        }))
    }
}
