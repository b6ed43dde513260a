//! One declaration per route: dispatch and the OpenAPI document come from the same list.
//!
//! A function writes each handler once, with its `#[utoipa::path(...)]` attribute (method, path,
//! parameters, responses), and lists the handlers once in [`routes!`](crate::routes). The macro
//! derives the function's `ApiDoc` (its OpenAPI fragment) from that list and builds a
//! [`Router`] whose routes take their method and path template from the same attributes, so a
//! route cannot be served without being documented, nor documented without being served.
//!
//! Handlers have one shape: `async fn(&State, &Request, &Params) -> Result<Response, ApiError>`.
//! Path parameters are read by the names the template gives them (`p.get("sandboxIdOrName")`).
//!
//! Matching: a template's literal segments match exactly, `{name}` matches one non-empty
//! segment (percent-decoded). When several templates match a path, the most specific wins (at
//! the first segment where they differ, a literal beats a parameter), so `/api/runners/me`
//! is never taken for `/api/runners/{id}`. A path no template matches, or a method no route of
//! the path serves, is Daytona's 404 `Cannot <METHOD> <path>`.

use std::future::Future;
use std::pin::Pin;

use cove_api_types::ApiError;
use http::Method;

use crate::web::{self, Request, Response};

/// What a handler returns: natively `Send` (tests and benchmarks spawn requests on tokio), in a
/// component not (spin-sdk futures are single-threaded).
#[cfg(not(target_arch = "wasm32"))]
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send + 'a>>;
/// What a handler returns: natively `Send` (tests and benchmarks spawn requests on tokio), in a
/// component not (spin-sdk futures are single-threaded).
#[cfg(target_arch = "wasm32")]
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + 'a>>;

/// A route's handler, type-erased.
pub type Handler<S> = for<'a> fn(&'a S, &'a Request, &'a Params) -> HandlerFuture<'a>;

/// The path parameters of a matched route, by template name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The decoded value of `{name}`. Every route's handler reads only names its own template
    /// declares (the route tests call every route), so a miss is a programming error: it is
    /// logged and answered as an empty value, which no lookup matches.
    pub fn get(&self, name: &str) -> &str {
        match self.0.iter().find(|(n, _)| n == name) {
            Some((_, v)) => v,
            None => {
                tracing::error!(
                    param = name,
                    "handler read a parameter its route does not have"
                );
                ""
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed path template such as `/api/sandbox/{sandboxIdOrName}/start`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    source: String,
    segments: Vec<Segment>,
}

impl Template {
    fn parse(path: &str) -> Self {
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Self {
            source: path.to_owned(),
            segments,
        }
    }

    /// The parameters when `path` (already split and decoded) matches.
    fn matches(&self, path: &[String]) -> Option<Params> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, got) in self.segments.iter().zip(path) {
            match seg {
                Segment::Literal(l) if l == got => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), got.clone())),
            }
        }
        Some(Params(params))
    }

    /// Literal positions, for "most specific wins".
    fn specificity(&self) -> Vec<bool> {
        self.segments
            .iter()
            .map(|s| matches!(s, Segment::Literal(_)))
            .collect()
    }

    fn with_prefix(&self, from: &str, to: &str) -> Option<Self> {
        let rest = self.source.strip_prefix(from)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| Self::parse(&format!("{to}{rest}")))
    }
}

struct Route<S> {
    method: Method,
    template: Template,
    handler: Handler<S>,
}

/// A function's routes; built by [`routes!`](crate::routes).
pub struct Router<S> {
    routes: Vec<Route<S>>,
}

impl<S> Default for Router<S> {
    fn default() -> Self {
        Self { routes: Vec::new() }
    }
}

impl<S> Router<S> {
    /// Adds a route for each of `methods` on the path template `path`.
    pub fn route(mut self, methods: &[Method], path: &str, handler: Handler<S>) -> Self {
        let template = Template::parse(path);
        for m in methods {
            self.routes.push(Route {
                method: m.clone(),
                template: template.clone(),
                handler,
            });
        }
        self
    }

    /// Serves every route under the prefix `from` once more under `to`, except those whose
    /// template `skip` accepts (Daytona's deprecated `/api/workspace` aliases of `/api/sandbox`).
    pub fn alias(mut self, from: &str, to: &str, skip: impl Fn(&str) -> bool) -> Self {
        let aliases: Vec<Route<S>> = self
            .routes
            .iter()
            .filter(|r| !skip(&r.template.source))
            .filter_map(|r| {
                Some(Route {
                    method: r.method.clone(),
                    template: r.template.with_prefix(from, to)?,
                    handler: r.handler,
                })
            })
            .collect();
        self.routes.extend(aliases);
        self
    }

    /// Every `(METHOD, path template)` this router serves, e.g. `("GET", "/api/sandbox/{sandboxIdOrName}")`.
    pub fn operations(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|r| (r.method.as_str().to_owned(), r.template.source.clone()))
            .collect()
    }

    /// Runs the handler of the route `req` matches.
    /// Serves `req`: the handler's answer, or its error (and the 404/405 of an unknown route) in
    /// Daytona's envelope for the request's path. A component's `handle` is this one call.
    pub async fn serve(&self, state: &S, req: &Request) -> Response {
        web::respond(req.uri().path(), self.dispatch(state, req).await)
    }

    pub async fn dispatch(&self, state: &S, req: &Request) -> Result<Response, ApiError> {
        let path = split(req.uri().path());
        let best = self
            .routes
            .iter()
            .filter(|r| r.method == req.method())
            .filter_map(|r| r.template.matches(&path).map(|p| (r, p)))
            .max_by(|(a, _), (b, _)| a.template.specificity().cmp(&b.template.specificity()));
        match best {
            Some((route, params)) => (route.handler)(state, req, &params).await,
            None => Err(web::no_route(req)),
        }
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(web::percent_decode)
        .collect()
}

/// The HTTP methods of a utoipa path item type (what `#[utoipa::path]` generated).
pub fn methods_of<P: utoipa::Path>() -> Vec<Method> {
    P::methods()
        .into_iter()
        .map(|m| match m {
            utoipa::openapi::HttpMethod::Get => Method::GET,
            utoipa::openapi::HttpMethod::Post => Method::POST,
            utoipa::openapi::HttpMethod::Put => Method::PUT,
            utoipa::openapi::HttpMethod::Delete => Method::DELETE,
            utoipa::openapi::HttpMethod::Patch => Method::PATCH,
            utoipa::openapi::HttpMethod::Head => Method::HEAD,
            utoipa::openapi::HttpMethod::Options => Method::OPTIONS,
            utoipa::openapi::HttpMethod::Trace => Method::TRACE,
        })
        .collect()
}

/// Declares a function's routes once: the OpenAPI fragment and the router come from one list of
/// `#[utoipa::path]` handlers.
///
/// ```ignore
/// cove_edge::routes! {
///     /// This function's part of the OpenAPI document.
///     pub struct ApiDoc;
///     fn router() -> Router<Env>;
///     pub async fn handle;
///     [api_key_create, api_key_list, api_key_get]
/// }
/// ```
///
/// `pub async fn handle;` (optional) also generates the component's entry point,
/// `pub async fn handle(state: &Env, req: Request) -> Response`, which serves through the router
/// ([`Router::serve`]); a function whose state is built per request writes its own.
/// Optional clauses after the list: `modifiers(...)` (passed to `#[openapi(modifiers(...))]`)
/// and `alias(FROM, TO, SKIP)` (see [`Router::alias`]).
#[macro_export]
macro_rules! routes {
    (
        $(#[$doc_meta:meta])*
        $doc_vis:vis struct $doc:ident;
        $router_vis:vis fn $router:ident() -> Router<$state:ty>;
        $(pub async fn $handle:ident;)?
        [$($handler:ident),+ $(,)?]
        $(modifiers($($modifier:expr),+ $(,)?))?
        $(alias($from:expr, $to:expr, $skip:expr))?
    ) => {
        $(
            /// Serves one request: the matching handler's answer, errors (and unknown routes)
            /// in Daytona's envelope.
            pub async fn $handle(
                state: &$state,
                req: $crate::web::Request,
            ) -> $crate::web::Response {
                $router().serve(state, &req).await
            }
        )?

        $(#[$doc_meta])*
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),+) $(, modifiers($($modifier),+))?)]
        $doc_vis struct $doc;

        /// The routes of this function (built once per instance).
        $router_vis fn $router() -> &'static $crate::router::Router<$state> {
            static ROUTER: std::sync::OnceLock<$crate::router::Router<$state>> =
                std::sync::OnceLock::new();
            ROUTER.get_or_init(|| {
                $crate::__private::pastey::paste! {
                    $crate::router::Router::default()
                    $(
                        .route(
                            &$crate::router::methods_of::<[<__path_ $handler>]>(),
                            &<[<__path_ $handler>] as utoipa::Path>::path(),
                            |s, r, p| Box::pin($handler(s, r, p)),
                        )
                    )+
                    $(.alias($from, $to, $skip))?
                }
            })
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn req(method: Method, uri: &str) -> Request {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Bytes::new())
            .expect("request")
    }

    fn answer(tag: &'static str) -> Result<Response, ApiError> {
        Ok(Response::new(Bytes::from_static(tag.as_bytes())))
    }

    fn me<'a>(_: &'a (), _: &'a Request, _: &'a Params) -> HandlerFuture<'a> {
        Box::pin(async { answer("me") })
    }

    fn by_id<'a>(_: &'a (), _: &'a Request, p: &'a Params) -> HandlerFuture<'a> {
        let id = p.get("id").to_owned();
        Box::pin(async move { Ok(Response::new(Bytes::from(format!("id={id}")))) })
    }

    fn delete<'a>(_: &'a (), _: &'a Request, _: &'a Params) -> HandlerFuture<'a> {
        Box::pin(async { answer("delete") })
    }

    fn router() -> Router<()> {
        Router::default()
            .route(&[Method::GET], "/api/runners/{id}", by_id)
            .route(&[Method::GET], "/api/runners/me", me)
            .route(&[Method::DELETE], "/api/runners/{id}", delete)
            .alias("/api/runners", "/api/legacy", |t| t.ends_with("/me"))
    }

    async fn body(r: &Router<()>, m: Method, uri: &str) -> Result<String, u16> {
        r.dispatch(&(), &req(m, uri))
            .await
            .map(|resp| String::from_utf8_lossy(resp.body()).into_owned())
            .map_err(|e| e.status)
    }

    #[tokio::test]
    async fn literals_beat_parameters_and_methods_select() {
        let r = router();
        assert_eq!(
            body(&r, Method::GET, "/api/runners/me").await,
            Ok("me".into())
        );
        assert_eq!(
            body(&r, Method::GET, "/api/runners/r%201").await,
            Ok("id=r 1".into())
        );
        assert_eq!(
            body(&r, Method::GET, "/api/runners/a%2Fb").await,
            Ok("id=a/b".into())
        );
        assert_eq!(
            body(&r, Method::DELETE, "/api/runners/me").await,
            Ok("delete".into())
        );
        assert_eq!(body(&r, Method::POST, "/api/runners/me").await, Err(404));
        assert_eq!(body(&r, Method::GET, "/api/runners").await, Err(404));
        assert_eq!(body(&r, Method::GET, "/api/runners/x/y").await, Err(404));
        assert_eq!(body(&r, Method::GET, "/api/runnersx/me").await, Err(404));
    }

    #[tokio::test]
    async fn aliases_serve_the_same_handlers_except_skipped() {
        let r = router();
        assert_eq!(
            body(&r, Method::GET, "/api/legacy/7").await,
            Ok("id=7".into())
        );
        // `/me` is skipped: the parameter route answers instead.
        assert_eq!(
            body(&r, Method::GET, "/api/legacy/me").await,
            Ok("id=me".into())
        );
        let ops = r.operations();
        assert!(
            ops.contains(&("DELETE".into(), "/api/legacy/{id}".into())),
            "{ops:?}"
        );
        assert!(
            !ops.contains(&("GET".into(), "/api/legacy/me".into())),
            "{ops:?}"
        );
    }

    #[test]
    fn a_missing_parameter_reads_empty() {
        assert_eq!(Params::default().get("id"), "");
    }
}
