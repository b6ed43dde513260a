//! The functions' handlers called in-process, routed like `cove` routes them: each handler is
//! mounted on a Spin route (`/api/api-keys/...` = that path and everything below it, otherwise the
//! exact path), and the most specific route that matches serves the call.
//!
//! ```ignore
//! let api = InProcess::new(h.env.clone())
//!     .route("/api/api-keys/...", |env, req| async move { api_keys::handle(&env, req).await })
//!     .route("/api/organizations/...", |env, req| async move { organizations::handle(&env, req).await });
//! let key = cove_testkit::org::api_key(&api, &alice, None, "ci", &["write:sandboxes"]).await;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cove_edge::{Env, Request, Response};

use crate::api::{Api, Call, Reply};

type Handler =
    Arc<dyn Fn(Env, Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Handlers mounted on routes, sharing one [`Env`].
#[derive(Clone)]
pub struct InProcess {
    env: Env,
    routes: Vec<(Route, Handler)>,
}

impl InProcess {
    pub fn new(env: Env) -> Self {
        Self {
            env,
            routes: Vec::new(),
        }
    }

    /// Mounts `handler` on the Spin route `pattern`.
    pub fn route<F, Fut>(mut self, pattern: &str, handler: F) -> Self
    where
        F: Fn(Env, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |env, req| Box::pin(handler(env, req)));
        self.routes.push((Route::parse(pattern), handler));
        self
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    fn handler(&self, path: &str) -> Option<&Handler> {
        self.routes
            .iter()
            .filter(|(r, _)| r.matches(path))
            .max_by_key(|(r, _)| r.specificity())
            .map(|(_, h)| h)
    }
}

impl Api for InProcess {
    fn send(&self, call: Call) -> impl Future<Output = Reply> + Send {
        let handler = self.handler(call.route_path()).cloned().unwrap_or_else(|| {
            panic!(
                "no handler mounted for {} (mounted: {:?})",
                call.path,
                self.routes.iter().map(|(r, _)| r).collect::<Vec<_>>()
            )
        });
        let fut = handler(self.env.clone(), call.to_request());
        async move {
            let resp = fut.await;
            let (parts, body) = resp.into_parts();
            Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            }
        }
    }
}

/// A Spin HTTP route: `/a/b` (exactly that path) or `/a/b/...` (it and everything below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    prefix: String,
    wildcard: bool,
}

impl Route {
    pub fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix("/...") {
            Some(prefix) => Self {
                prefix: prefix.trim_end_matches('/').to_owned(),
                wildcard: true,
            },
            None if pattern == "..." => Self {
                prefix: String::new(),
                wildcard: true,
            },
            None => Self {
                prefix: pattern.trim_end_matches('/').to_owned(),
                wildcard: false,
            },
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        if !self.wildcard {
            return path == self.prefix;
        }
        path == self.prefix
            || path
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Exact routes beat wildcards; longer prefixes beat shorter ones.
    fn specificity(&self) -> (usize, bool) {
        (self.prefix.len(), !self.wildcard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_spin() {
        let w = Route::parse("/api/api-keys/...");
        assert!(w.matches("/api/api-keys"));
        assert!(w.matches("/api/api-keys/"));
        assert!(w.matches("/api/api-keys/current"));
        assert!(!w.matches("/api/api-keysx"));
        assert!(!w.matches("/api"));
        let exact = Route::parse("/api/config");
        assert!(exact.matches("/api/config"));
        assert!(!exact.matches("/api/config/x"));
        assert!(Route::parse("/...").matches("/anything/at/all"));
    }

    fn answering(text: &'static str) -> impl Fn(Env, Request) -> std::future::Ready<Response> {
        move |_, _| {
            std::future::ready(http::Response::new(bytes::Bytes::from_static(
                text.as_bytes(),
            )))
        }
    }

    #[tokio::test]
    async fn the_most_specific_route_serves() {
        let env = Env {
            store: cove_store::Store::new(&cove_store::StoreConfig::local(
                "http://127.0.0.1:1",
                "unused",
            )),
            jwt: Default::default(),
        };
        let api = InProcess::new(env)
            .route("/api/runners/...", answering("runners"))
            .route("/api/runners", answering("runners-exact"))
            .route("/api/...", answering("catch-all"))
            .route("/api/sandbox/...", answering("sandboxes"));
        let body = |path: &'static str| {
            let api = api.clone();
            async move { api.send(Call::get(path)).await.json() }
        };
        assert_eq!(body("/api/runners").await, "runners-exact");
        assert_eq!(body("/api/runners/r1?x=1").await, "runners");
        assert_eq!(body("/api/sandbox").await, "sandboxes");
        assert_eq!(body("/api/volumes").await, "catch-all");
        let unrouted = tokio::spawn(async move {
            InProcess::new(api.env().clone())
                .send(Call::get("/api/x"))
                .await
        });
        assert!(
            unrouted.await.is_err(),
            "an unrouted call is a test mistake: panics"
        );
    }
}
