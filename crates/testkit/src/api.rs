//! Calling the control plane's public API the same way whether its functions run in-process
//! ([`crate::inprocess::InProcess`]) or inside a running `cove` ([`Http`]).
//!
//! Paths are whole (`/api/api-keys`, `/toolbox/...`). [`Api::send`] returns whatever came back;
//! [`Api::call`] also asserts what every answer of the API must be (an error envelope on 4xx,
//! never a 5xx) and returns `(status, body)`.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

/// One request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/api/sandbox?limit=1`.
    pub path: String,
    /// Sent as `Authorization: Bearer <token>` (a JWT or an API key).
    pub token: Option<String>,
    /// Sent as `X-Daytona-Organization-ID`.
    pub org: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body and its content type.
    pub body: Option<(Bytes, String)>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            token: None,
            org: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    /// Any header; panics on a name or value HTTP does not allow (a mistake in the test).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).unwrap_or_else(|e| panic!("header {name:?}: {e}"));
        let value =
            HeaderValue::try_from(value).unwrap_or_else(|e| panic!("header value {value:?}: {e}"));
        self.headers.push((name, value));
        self
    }

    /// A JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.body(body.to_string(), "application/json")
    }

    /// Any body, sent with `content_type`.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        self.body = Some((body.into(), content_type.to_owned()));
        self
    }

    /// The call most in-process tests make: `method path`, maybe a bearer token, an organization
    /// header and a JSON body (sent as `application/json`, as given).
    pub fn simple(
        method: &str,
        path: &str,
        token: Option<&str>,
        org: Option<&str>,
        body: Option<&str>,
    ) -> Self {
        let method = Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|e| panic!("method {method:?}: {e}"));
        let mut call = Call::new(method, path);
        call.token = token.map(str::to_owned);
        call.org = org.map(str::to_owned);
        if let Some(b) = body {
            call = call.body(b.to_owned(), "application/json");
        }
        call
    }

    /// The path without its query: what error envelopes report as `path`.
    pub fn route_path(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The request as a function's `handle` takes it.
    pub fn to_request(&self) -> http::Request<Bytes> {
        let mut req =
            http::Request::new(self.body.as_ref().map(|b| b.0.clone()).unwrap_or_default());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self
            .path
            .parse()
            .unwrap_or_else(|e| panic!("path {:?}: {e}", self.path));
        let h = req.headers_mut();
        for (name, value) in self.header_list() {
            h.append(name, value);
        }
        req
    }

    /// Every header the call carries: authorization, organization, content type, the extra ones.
    fn header_list(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut list = Vec::new();
        let mut push = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::try_from(value) {
                list.push((name, v));
            }
        };
        if let Some(t) = &self.token {
            push(http::header::AUTHORIZATION, &format!("Bearer {t}"));
        }
        if let Some(o) = &self.org {
            push(HeaderName::from_static("x-daytona-organization-id"), o);
        }
        if let Some((_, ct)) = &self.body {
            push(http::header::CONTENT_TYPE, ct);
        }
        list.extend(self.headers.iter().cloned());
        list
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// What a function's `handle` answered.
    pub fn from_response(resp: http::Response<Bytes>) -> Self {
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// The checks every answer of the API must pass for `call`: a 4xx/5xx carries the error
    /// envelope for the call's path, and nothing is a 5xx. Returns `(status, JSON body)`.
    pub fn checked(&self, call: &Call) -> (u16, Value) {
        let path = call.route_path();
        if self.status >= 400 {
            self.assert_envelope(self.status, path);
        }
        assert!(
            self.status < 500,
            "{} {path} -> {} {}",
            call.method,
            self.status,
            self.json()
        );
        (self.status, self.json())
    }

    /// The body as JSON: `Null` when empty, a JSON string holding the text when it is not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is the API's error envelope (Daytona's shape) for `status` at `path`.
    pub fn assert_envelope(&self, status: u16, path: &str) {
        let v = self.json();
        assert_eq!(self.status, status, "{v}");
        assert_eq!(v["statusCode"], status, "error envelope: {v}");
        assert_eq!(v["path"], path, "error envelope: {v}");
        assert_eq!(v["source"], "DAYTONA_API", "error envelope: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error envelope: {v}"
        );
        assert!(
            v["error"].as_str().is_some_and(|m| !m.is_empty()),
            "error envelope: {v}"
        );
        assert!(v["timestamp"].is_string(), "error envelope: {v}");
    }

    /// Asserts the status is `status`; returns the JSON body.
    pub fn expect(&self, status: u16, what: &str) -> Value {
        let v = self.json();
        assert_eq!(self.status, status, "{what}: {v}");
        v
    }
}

/// Something that answers the public API.
pub trait Api: Sync {
    /// Sends one call; panics only when no answer comes at all (the fixture is broken).
    fn send(&self, call: Call) -> impl Future<Output = Reply> + Send;

    /// [`Api::send`] and the checks every answer must pass: a 4xx/5xx carries the error
    /// envelope for the call's path, and nothing is a 5xx. Returns `(status, JSON body)`.
    fn call(&self, call: Call) -> impl Future<Output = (u16, Value)> + Send {
        async move {
            let reply = self.send(call.clone()).await;
            reply.checked(&call)
        }
    }
}

/// The API of a running `cove` (or any server) over HTTP.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// `base` is the server root, e.g. `http://127.0.0.1:4711` (paths carry `/api`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }
}

impl Api for Http {
    fn send(&self, call: Call) -> impl Future<Output = Reply> + Send {
        let url = format!("{}{}", self.base, call.path);
        let mut req = self.client.request(call.method.clone(), &url);
        for (name, value) in call.header_list() {
            req = req.header(name, value);
        }
        if let Some((body, _)) = call.body {
            req = req.body(body);
        }
        async move {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{} {url}: no answer: {e}", call.method));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{} {url}: reading the body: {e}", call.method));
            Reply {
                status,
                headers,
                body,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_becomes_the_request_a_handler_takes() {
        let c = Call::post("/api/api-keys?x=1")
            .token("tok")
            .org("org-1")
            .header("host", "cove.test:3000")
            .json(&json!({"name": "k"}));
        assert_eq!(c.route_path(), "/api/api-keys");
        let r = c.to_request();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri().path(), "/api/api-keys");
        assert_eq!(r.uri().query(), Some("x=1"));
        let h = r.headers();
        assert_eq!(h["authorization"], "Bearer tok");
        assert_eq!(h["x-daytona-organization-id"], "org-1");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["host"], "cove.test:3000");
        assert_eq!(r.body().as_ref(), br#"{"name":"k"}"#);
        let bare = Call::get("/api/health").to_request();
        assert!(bare.headers().is_empty());
        assert!(bare.body().is_empty());
    }

    #[test]
    fn reply_bodies_read_as_json_text_or_null() {
        let reply = |body: &'static [u8]| Reply {
            status: 200,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
        };
        assert_eq!(reply(br#"{"a":1}"#).json(), json!({"a": 1}));
        assert_eq!(reply(b"plain").json(), json!("plain"));
        assert_eq!(reply(b"").json(), Value::Null);
    }

    #[test]
    fn the_envelope_check_accepts_the_envelope_and_nothing_else() {
        let envelope = json!({"statusCode": 404, "path": "/api/x", "source": "DAYTONA_API",
            "message": "not found", "error": "Not Found", "timestamp": "2026-01-01T00:00:00.000Z"});
        let reply = |v: &Value| Reply {
            status: 404,
            headers: HeaderMap::new(),
            body: Bytes::from(v.to_string()),
        };
        reply(&envelope).assert_envelope(404, "/api/x");
        let mut wrong_source = envelope.clone();
        wrong_source["source"] = json!("COVE_RUNNER");
        let caught =
            std::panic::catch_unwind(|| reply(&wrong_source).assert_envelope(404, "/api/x"));
        assert!(caught.is_err(), "another source is not the API's envelope");
        let caught = std::panic::catch_unwind(|| reply(&envelope).assert_envelope(404, "/api/y"));
        assert!(caught.is_err(), "another path");
    }
}
