//! The auth gate in front of the internal registry: a streaming reverse proxy on a loopback
//! port that checks HTTP Basic credentials on every request.
//!
//! - the internal account (`internal_registry_username` / `internal_registry_password`, what
//!   runners use): everything;
//! - `cove-push-<orgId>` + a signed registry token (`registry-push-access`): `/v2/` and
//!   `/v2/cove-<orgId>/...` only; any other path → 403 `DENIED`;
//! - anything else (no, wrong or expired credentials) → 401 with
//!   `WWW-Authenticate: Basic realm="cove"`, so `docker login` asks for credentials.
//!
//! Bodies (layers) stream through in both directions; nothing is buffered.

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::backends::{self, BackendError, EmbeddedServer};

/// Credentials the gate accepts.
#[derive(Clone)]
pub struct GateAuth {
    pub internal_username: String,
    pub internal_password: String,
    /// `scoped_credentials_secret`.
    pub platform_secret: Vec<u8>,
}

/// Who a request comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Caller {
    Internal,
    /// A push-access credential for this project.
    Project(String),
    Anonymous,
}

impl GateAuth {
    /// Identifies the caller from the `Authorization` header.
    pub fn caller(&self, authorization: Option<&HeaderValue>) -> Caller {
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return Caller::Anonymous;
        };
        if user == self.internal_username && constant_time_eq(&pass, &self.internal_password) {
            return Caller::Internal;
        }
        match cove_scoped_creds::verify_registry(
            &self.platform_secret,
            &user,
            &pass,
            cove_scoped_creds::now_unix(),
        ) {
            Ok(project) => Caller::Project(project),
            Err(error) => {
                tracing::info!(user, %error, "registry gate: credentials refused");
                Caller::Anonymous
            }
        }
    }
}

/// What the gate does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Forward,
    Unauthorized,
    Forbidden,
}

/// The rule table above, for one path.
pub fn decide(caller: &Caller, path: &str) -> Decision {
    match caller {
        Caller::Internal => Decision::Forward,
        Caller::Anonymous => Decision::Unauthorized,
        Caller::Project(project) => {
            let own = path
                .strip_prefix("/v2/")
                .and_then(|rest| rest.strip_prefix(project.as_str()))
                .is_some_and(|rest| rest.starts_with('/'));
            if path == "/v2/" || path == "/v2" || own {
                Decision::Forward
            } else {
                Decision::Forbidden
            }
        }
    }
}

fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

type GateBody = BoxBody<Bytes, hyper::Error>;

struct Gate {
    upstream: String,
    auth: GateAuth,
    client: Client<HttpConnector, Incoming>,
}

/// Starts the gate on a free loopback port, forwarding to `upstream` (`host:port`).
pub async fn start(upstream: String, auth: GateAuth) -> Result<EmbeddedServer, BackendError> {
    let gate = Arc::new(Gate {
        upstream,
        auth,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let service = hyper::service::service_fn(move |req| {
        let gate = gate.clone();
        async move { Ok::<_, Infallible>(gate.handle(req).await) }
    });
    backends::serve_embedded("registry gate", service).await
}

impl Gate {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<GateBody> {
        let caller = self.auth.caller(req.headers().get(header::AUTHORIZATION));
        let path = req.uri().path().to_owned();
        match decide(&caller, &path) {
            Decision::Unauthorized => return unauthorized(),
            Decision::Forbidden => return forbidden(&path),
            Decision::Forward => {}
        }
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let uri = format!("http://{}{pq}", self.upstream);
        match uri.parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target"),
        }
        req.headers_mut().remove(header::AUTHORIZATION);
        match self.client.request(req).await {
            Ok(resp) => resp.map(BodyExt::boxed),
            Err(error) => {
                tracing::warn!(%error, path, "registry gate: upstream request failed");
                plain(
                    StatusCode::BAD_GATEWAY,
                    "the internal registry did not answer",
                )
            }
        }
    }
}

fn full(body: impl Into<Bytes>) -> GateBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

fn plain(status: StatusCode, text: &'static str) -> Response<GateBody> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp
}

fn registry_error(status: StatusCode, code: &str, message: &str) -> Response<GateBody> {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}","detail":null}}]}}"#);
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn unauthorized() -> Response<GateBody> {
    let mut resp = registry_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="cove""#),
    );
    resp
}

fn forbidden(path: &str) -> Response<GateBody> {
    tracing::info!(path, "registry gate: outside the credential's project");
    registry_error(
        StatusCode::FORBIDDEN,
        "DENIED",
        "requested access to the resource is denied",
    )
}

/// Whether `url` answers at all (any status): the registry is up.
pub async fn probe(url: &str) -> bool {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), client.get(uri)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn auth() -> GateAuth {
        GateAuth {
            internal_username: "cove-internal".into(),
            internal_password: "pw".into(),
            platform_secret: b"k".to_vec(),
        }
    }

    fn basic(user: &str, pass: &str) -> HeaderValue {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        HeaderValue::from_str(&format!("Basic {enc}")).unwrap()
    }

    #[test]
    fn callers_are_told_apart() {
        let a = auth();
        assert_eq!(a.caller(None), Caller::Anonymous);
        assert_eq!(
            a.caller(Some(&basic("cove-internal", "pw"))),
            Caller::Internal
        );
        assert_eq!(
            a.caller(Some(&basic("cove-internal", "px"))),
            Caller::Anonymous
        );
        let c = cove_scoped_creds::mint_registry(b"k", "o1", u64::MAX).unwrap();
        assert_eq!(
            a.caller(Some(&basic(&c.username, &c.password))),
            Caller::Project("cove-o1".into())
        );
        assert_eq!(
            a.caller(Some(&basic("cove-push-o2", &c.password))),
            Caller::Anonymous
        );
        let expired = cove_scoped_creds::mint_registry(b"k", "o1", 1).unwrap();
        assert_eq!(
            a.caller(Some(&basic(&expired.username, &expired.password))),
            Caller::Anonymous
        );
    }

    #[test]
    fn a_project_credential_reaches_its_project_only() {
        let p = Caller::Project("cove-o1".into());
        assert_eq!(decide(&p, "/v2/"), Decision::Forward);
        assert_eq!(
            decide(&p, "/v2/cove-o1/img/blobs/uploads/"),
            Decision::Forward
        );
        assert_eq!(
            decide(&p, "/v2/cove-o10/img/manifests/x"),
            Decision::Forbidden
        );
        assert_eq!(
            decide(&p, "/v2/cove-o2/img/manifests/x"),
            Decision::Forbidden
        );
        assert_eq!(decide(&p, "/v2/_catalog"), Decision::Forbidden);
        assert_eq!(decide(&Caller::Internal, "/v2/_catalog"), Decision::Forward);
        assert_eq!(decide(&Caller::Anonymous, "/v2/"), Decision::Unauthorized);
    }
}
