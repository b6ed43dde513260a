//! The running application: the route table and one `ProxyHandler` per component, plus the
//! responses cove generates itself (Daytona error envelopes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cove_api_types::ApiError;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use tracing::Level;
use wasmtime::{Engine, Trap};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, ProxyHandler};

use crate::body_limit::{self, BodyLimit};
use crate::log_throttle::LogThrottle;
use crate::outbound::{InternalDispatch, InternalTarget, ResponseFuture};
use crate::routes::{RouteMatch, Router};
use crate::runtime::{ComponentRuntime, InstanceLimits, PreparedComponent};
use crate::throttled;

/// Header carrying cove's version on every response.
pub const VERSION_HEADER: &str = "x-daytona-api-version";
/// Extra time given to a request beyond `--request-timeout` before cove gives up waiting.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// One component as the app serves it.
struct Served {
    handler: ProxyHandler<ComponentRuntime>,
    body_limit: BodyLimit,
}

pub struct App {
    router: Router,
    components: HashMap<String, Served>,
    request_timeout: Duration,
    next_request_id: AtomicU64,
    version: HeaderValue,
    /// Guest failures, a full pool and timeouts can be caused by any client: throttled lines.
    failure_log: LogThrottle,
    timeout_log: LogThrottle,
}

/// How a request that did not produce a guest response ended.
enum Failure {
    TimedOut,
    NoInstance,
    Guest,
}

impl App {
    pub fn new(
        engine: &Engine,
        router: Router,
        prepared: Vec<PreparedComponent>,
        limits: InstanceLimits,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<App>| {
            let internal: Weak<dyn InternalDispatch> = weak.clone();
            let components = prepared
                .into_iter()
                .map(|p| {
                    let id = p.id().to_owned();
                    let body_limit = p.body_limit();
                    let runtime = p.into_runtime(engine, internal.clone(), limits);
                    let handler = ProxyHandler::new(runtime);
                    (
                        id,
                        Served {
                            handler,
                            body_limit,
                        },
                    )
                })
                .collect();
            App {
                router,
                components,
                request_timeout: limits.request_timeout,
                next_request_id: AtomicU64::new(0),
                version: HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
                failure_log: LogThrottle::default(),
                timeout_log: LogThrottle::default(),
            }
        })
    }

    /// How many instances of `component` were created so far (`None`: no such component).
    pub fn instantiations(&self, component: &str) -> Option<u64> {
        self.components
            .get(component)
            .map(|c| c.handler.state().instantiations())
    }

    /// The request body limit of `component`.
    pub fn body_limit(&self, component: &str) -> Option<BodyLimit> {
        self.components.get(component).map(|c| c.body_limit)
    }

    /// Serves a request that arrived over the network.
    pub async fn handle_external(
        &self,
        request: Request<hyper::body::Incoming>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Response<WasiBody> {
        let request = request.map(|b| b.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
        let mut response = self.route_and_call(request, local, Some(remote)).await;
        response
            .headers_mut()
            .insert(VERSION_HEADER, self.version.clone());
        response
    }

    async fn route_and_call(
        &self,
        mut request: Request<WasiBody>,
        local: SocketAddr,
        remote: Option<SocketAddr>,
    ) -> Response<WasiBody> {
        let path = request.uri().path().to_owned();
        let Some(m) = self.router.route(&path) else {
            let message = format!("Cannot {} {path}", request.method());
            return envelope(404, message, &path);
        };
        let component = m.component.to_owned();
        add_spin_headers(&mut request, &m, local, remote);
        self.call(&component, request, &path).await
    }

    /// Runs `component` on `request`; failures become Daytona error envelopes.
    async fn call(
        &self,
        component: &str,
        request: Request<WasiBody>,
        path: &str,
    ) -> Response<WasiBody> {
        let Some(served) = self.components.get(component) else {
            return envelope(404, format!("Cannot {} {path}", request.method()), path);
        };
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        // Checked before an instance exists: a refused body costs no guest memory.
        let (request, tripped) = match body_limit::apply(request, served.body_limit) {
            Ok(checked) => checked,
            Err(refused) => {
                tracing::debug!(
                    component,
                    request_id,
                    path,
                    declared = refused.declared,
                    limit = refused.limit,
                    "request body too large (Content-Length)"
                );
                return payload_too_large(refused.limit, path);
            }
        };
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.request_timeout + TIMEOUT_GRACE,
            served.handler.handle(request_id, request),
        )
        .await;
        let elapsed = started.elapsed();
        if tripped.is_set() {
            // Whatever the guest answered to the failed body read, the client learns why.
            tracing::debug!(
                component,
                request_id,
                path,
                "request body too large (cut off)"
            );
            return payload_too_large(served.body_limit.max_bytes().unwrap_or(0), path);
        }
        let error = match result {
            Ok(Ok(response)) => {
                tracing::debug!(
                    component,
                    request_id,
                    status = response.status().as_u16(),
                    elapsed_us = elapsed.as_micros() as u64,
                    "request handled"
                );
                return response;
            }
            Ok(Err(error)) => error,
            Err(_) => wasmtime::Error::new(ExpirationError),
        };
        self.failed(component, request_id, path, &error, elapsed)
    }

    /// The envelope for a request that produced no guest response, logged (throttled).
    fn failed(
        &self,
        component: &str,
        request_id: u64,
        path: &str,
        error: &wasmtime::Error,
        elapsed: Duration,
    ) -> Response<WasiBody> {
        let failure = self.classify(error, elapsed);
        self.log_failure(&failure, component, request_id, path, error);
        match failure {
            Failure::TimedOut => envelope(504, "Request timed out", path),
            Failure::NoInstance => envelope(503, "Service unavailable", path),
            Failure::Guest => envelope(500, "Internal server error", path),
        }
    }

    fn classify(&self, error: &wasmtime::Error, elapsed: Duration) -> Failure {
        if error.is::<ExpirationError>()
            || error.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
            || elapsed >= self.request_timeout
        {
            Failure::TimedOut
        } else if error.is::<InstantiationError<u64>>() {
            Failure::NoInstance
        } else {
            Failure::Guest
        }
    }

    fn log_failure(
        &self,
        failure: &Failure,
        component: &str,
        request_id: u64,
        path: &str,
        error: &wasmtime::Error,
    ) {
        let error = format!("{error:?}");
        match failure {
            Failure::TimedOut => throttled!(
                self.timeout_log,
                Level::WARN,
                component,
                request_id,
                path,
                timeout_s = self.request_timeout.as_secs_f64(),
                "request timed out"
            ),
            // A full instance pool is load, not a fault of cove's.
            Failure::NoInstance => throttled!(
                self.failure_log,
                Level::WARN,
                component,
                request_id,
                path,
                error,
                "cannot instantiate component"
            ),
            Failure::Guest => throttled!(
                self.failure_log,
                Level::ERROR,
                component,
                request_id,
                path,
                error,
                "component failed"
            ),
        }
    }
}

/// Spin hands components an absolute URL plus its routing headers.
fn add_spin_headers(
    request: &mut Request<WasiBody>,
    m: &RouteMatch<'_>,
    local: SocketAddr,
    remote: Option<SocketAddr>,
) {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| local.to_string(), str::to_owned);
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let full_url = format!("http://{host}{path_and_query}");
    if let Ok(uri) = full_url.parse() {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("spin-full-url", &full_url);
    set("spin-path-info", &m.path_info);
    set("spin-matched-route", m.raw_route);
    set("spin-raw-component-route", m.raw_route);
    set("spin-component-route", m.matched_prefix);
    set("spin-base-path", "/");
    if let Some(remote) = remote {
        set("spin-client-addr", &remote.to_string());
    }
}

/// 413 in the envelope; the connection is closed after it (the rest of the body is not read).
fn payload_too_large(limit: u64, path: &str) -> Response<WasiBody> {
    let mut response = envelope(
        413,
        format!("Request body is too large (limit: {limit} bytes)"),
        path,
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

impl InternalDispatch for App {
    fn dispatch(
        self: Arc<Self>,
        target: InternalTarget,
        request: Request<WasiBody>,
    ) -> ResponseFuture {
        Box::pin(async move {
            let mut response = match target {
                InternalTarget::Component(id) => {
                    if !self.components.contains_key(&id) {
                        return Err(wasmtime_wasi_http::Error::DestinationNotFound);
                    }
                    let path = request.uri().path().to_owned();
                    self.call(&id, request, &path).await
                }
                InternalTarget::App => {
                    let local = SocketAddr::from(([127, 0, 0, 1], 0));
                    self.route_and_call(request, local, None).await
                }
            };
            response
                .headers_mut()
                .insert(VERSION_HEADER, self.version.clone());
            Ok(response)
        })
    }
}

/// A host-generated JSON error response in Daytona's envelope.
pub fn envelope(status: u16, message: impl Into<String>, path: &str) -> Response<WasiBody> {
    let body = ApiError::new(status, message).envelope(path);
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(
        Full::new(Bytes::from(json))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
