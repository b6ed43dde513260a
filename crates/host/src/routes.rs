//! HTTP routing as Spin does it: exact paths, and `/...` wildcards matching a prefix and
//! everything below it. An exact route beats any wildcard; among wildcards the longest wins.

use std::collections::HashMap;

use crate::manifest::{HttpTrigger, Route};

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("route {route:?} is declared for both {first:?} and {second:?}")]
    Duplicate {
        route: String,
        first: String,
        second: String,
    },
}

#[derive(Debug, Clone)]
struct Target {
    component: String,
    /// The route as written in the manifest.
    raw: String,
}

/// The public route table of an application (private components are not in it).
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Target>,
    /// (prefix without the trailing `/...`, target), longest prefix first.
    wildcards: Vec<(String, Target)>,
}

/// The result of routing a request path.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub component: &'a str,
    /// The route as written in the manifest, e.g. `/api/api-keys/...`.
    pub raw_route: &'a str,
    /// The part of the route before any wildcard, e.g. `/api/api-keys`.
    pub matched_prefix: &'a str,
    /// The rest of the path after `matched_prefix` (empty for exact routes).
    pub path_info: String,
}

/// Strips a trailing `/` (except for the root) so `/a/` and `/a` route alike.
fn normalize(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

impl Router {
    pub fn new(triggers: &[HttpTrigger]) -> Result<Self, RouteError> {
        let mut router = Router::default();
        for t in triggers {
            let Route::Path(raw) = &t.route else { continue };
            let target = Target {
                component: t.component.clone(),
                raw: raw.clone(),
            };
            let existing = if let Some(prefix) = raw.strip_suffix("/...") {
                let prefix = normalize(prefix).trim_end_matches('/').to_owned();
                let prev = router
                    .wildcards
                    .iter()
                    .find(|(p, _)| *p == prefix)
                    .map(|(_, t)| t.clone());
                if prev.is_none() {
                    router.wildcards.push((prefix, target));
                }
                prev
            } else {
                let key = normalize(raw).to_owned();
                match router.exact.get(&key) {
                    Some(prev) => Some(prev.clone()),
                    None => {
                        router.exact.insert(key, target);
                        None
                    }
                }
            };
            if let Some(prev) = existing {
                return Err(RouteError::Duplicate {
                    route: raw.clone(),
                    first: prev.component,
                    second: t.component.clone(),
                });
            }
        }
        router
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(router)
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let path = normalize(path);
        if let Some(t) = self.exact.get(path) {
            return Some(RouteMatch {
                component: &t.component,
                raw_route: &t.raw,
                matched_prefix: &t.raw,
                path_info: String::new(),
            });
        }
        self.wildcards.iter().find_map(|(prefix, t)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| RouteMatch {
                component: &t.component,
                raw_route: &t.raw,
                matched_prefix: prefix,
                path_info: rest.to_owned(),
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let triggers: Vec<HttpTrigger> = routes
            .iter()
            .map(|(r, c)| HttpTrigger {
                component: (*c).into(),
                route: if *r == "private" {
                    Route::Private
                } else {
                    Route::Path((*r).into())
                },
            })
            .collect();
        Router::new(&triggers).unwrap()
    }

    fn target(r: &Router, path: &str) -> Option<String> {
        r.route(path)
            .map(|m| format!("{}{}", m.component, m.path_info))
    }

    #[test]
    fn exact_wildcard_and_specificity() {
        let r = router(&[
            ("/api/api-keys/...", "keys"),
            ("/api/...", "api"),
            ("/api/api-keys/current", "current"),
            ("/health", "health"),
            ("private", "internal"),
        ]);
        assert_eq!(target(&r, "/api/api-keys").as_deref(), Some("keys"));
        assert_eq!(target(&r, "/api/api-keys/").as_deref(), Some("keys"));
        assert_eq!(
            target(&r, "/api/api-keys/abc/def").as_deref(),
            Some("keys/abc/def")
        );
        assert_eq!(
            target(&r, "/api/api-keys/current").as_deref(),
            Some("current")
        );
        assert_eq!(
            target(&r, "/api/api-keysx").as_deref(),
            Some("api/api-keysx")
        );
        assert_eq!(target(&r, "/api").as_deref(), Some("api"));
        assert_eq!(target(&r, "/health").as_deref(), Some("health"));
        assert_eq!(target(&r, "/health/x"), None);
        assert_eq!(target(&r, "/healthz"), None);
        assert_eq!(target(&r, "/"), None);
    }

    #[test]
    fn root_wildcard_catches_everything_else() {
        let r = router(&[("/...", "all"), ("/a", "a")]);
        assert_eq!(target(&r, "/").as_deref(), Some("all/"));
        assert_eq!(target(&r, "/x/y").as_deref(), Some("all/x/y"));
        assert_eq!(target(&r, "/a").as_deref(), Some("a"));
        let m = r.route("/x").unwrap();
        assert_eq!(m.raw_route, "/...");
        assert_eq!(m.matched_prefix, "");
    }

    #[test]
    fn duplicates_are_rejected() {
        let t = |r: &str, c: &str| HttpTrigger {
            component: c.into(),
            route: Route::Path(r.into()),
        };
        let e = Router::new(&[t("/a/...", "x"), t("/a/...", "y")]).unwrap_err();
        assert!(e.to_string().contains("\"x\" and \"y\""));
        assert!(Router::new(&[t("/a", "x"), t("/a/", "y")]).is_err());
    }
}
