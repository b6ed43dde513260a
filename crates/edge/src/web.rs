//! Requests, responses, routing and JSON: what every handler uses.

use std::marker::PhantomData;

use bytes::Bytes;
use cove_api_types::ApiError;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A buffered request (control-plane bodies are small JSON documents).
pub type Request = http::Request<Bytes>;
/// A buffered response.
pub type Response = http::Response<Bytes>;

/// What a route handler answers: a response, or an error the router turns into the envelope.
pub type Answer = Result<Response, ApiError>;

/// The largest JSON body a control-plane route accepts.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Splits the path under `base` into segments: `/api/api-keys/a%20b` under `/api/api-keys` is `["a b"]`.
///
/// Returns `None` when the path is not under `base`. Empty segments (a trailing `/`) are dropped.
pub fn segments(req: &Request, base: &str) -> Option<Vec<String>> {
    let path = req.uri().path();
    let rest = path.strip_prefix(base)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(
        rest.split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect(),
    )
}

/// Decodes `%XX` escapes (invalid UTF-8 becomes U+FFFD).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a JSON body into `T`; any problem is a 400 in the Daytona envelope.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let body = req.body();
    if body.len() > MAX_JSON_BODY {
        return Err(ApiError::payload_too_large("Request body is too large"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Request body must be a JSON object"));
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE)
        && !ct
            .to_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("json")
    {
        return Err(ApiError::bad_request(
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
}

/// A request's JSON body, not parsed yet.
///
/// Handlers hand it to their service, which parses it ([`JsonBody::parse`]) only after it has
/// authorized the caller: who may not use a route gets its 401/403/404 whatever the body, and
/// never learns what the body would have been refused for (`crates/api-spec/tests/outsiders.rs`).
#[derive(Debug)]
pub struct JsonBody<'a, T> {
    req: &'a Request,
    into: PhantomData<fn() -> T>,
}

impl<'a, T: DeserializeOwned> JsonBody<'a, T> {
    /// The body of `req`, to be parsed as a `T`.
    pub fn of(req: &'a Request) -> Self {
        Self {
            req,
            into: PhantomData,
        }
    }

    /// Parses it ([`json_body`]): a 400 envelope for any problem.
    pub fn parse(self) -> Result<T, ApiError> {
        json_body(self.req)
    }
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "response serialization failed");
        ApiError::internal()
    })?;
    Ok(with_json_type(status, Bytes::from(body)))
}

/// An empty response (`204 No Content`).
pub fn no_content() -> Response {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn with_json_type(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// The error envelope response for `err` on `path`.
pub fn error_response(path: &str, err: &ApiError) -> Response {
    if err.status >= 500 {
        tracing::warn!(status = err.status, path, "request failed");
    }
    let body = serde_json::to_vec(&err.envelope(path)).unwrap_or_default();
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_json_type(status, Bytes::from(body))
}

/// Turns a handler result into the response sent.
pub fn respond(path: &str, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => error_response(path, &e),
    }
}

/// The 404/405 for a path or method no route matches.
pub fn no_route(req: &Request) -> ApiError {
    if *req.method() == Method::OPTIONS {
        return ApiError::method_not_allowed(req.method().as_str(), req.uri().path());
    }
    ApiError::not_found(format!("Cannot {} {}", req.method(), req.uri().path()))
}

/// A query parameter, percent-decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == name).then(|| percent_decode(&v.replace('+', " ")))
    })
}

/// Every value of a repeatable query parameter: `states=a&states=b`, `states[]=a` (brackets may be
/// percent-encoded) and comma-separated `states=a,b`, percent-decoded, empty values dropped.
pub fn query_values(req: &Request, name: &str) -> Vec<String> {
    let Some(q) = req.uri().query() else {
        return Vec::new();
    };
    let bracket = format!("{name}[]");
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = percent_decode(k);
            (k == name || k == bracket).then(|| percent_decode(&v.replace('+', " ")))
        })
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, body: &str) -> Request {
        http::Request::builder()
            .uri(uri)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn segments_are_split_and_decoded() {
        assert_eq!(
            segments(&req("/api/api-keys", ""), "/api/api-keys"),
            Some(vec![])
        );
        assert_eq!(
            segments(&req("/api/api-keys/", ""), "/api/api-keys"),
            Some(vec![])
        );
        assert_eq!(
            segments(&req("/api/api-keys/my%20key", ""), "/api/api-keys"),
            Some(vec!["my key".to_owned()])
        );
        assert_eq!(segments(&req("/api/api-keysx", ""), "/api/api-keys"), None);
        assert_eq!(
            query_param(&req("/x?a=1&b=two+words", ""), "b").as_deref(),
            Some("two words")
        );
    }

    #[test]
    fn repeatable_query_values() {
        let r = req(
            "/x?states=a&states%5B%5D=b&states[]=c,d&other=e&states=",
            "",
        );
        assert_eq!(query_values(&r, "states"), ["a", "b", "c", "d"]);
        assert!(query_values(&r, "none").is_empty());
    }

    #[test]
    fn json_errors_are_400_envelopes() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            name: String,
        }
        let e = json_body::<T>(&req("/x", "{not json")).unwrap_err();
        assert_eq!(e.status, 400);
        let e = json_body::<T>(&req("/x", "{\"name\": 5}")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = json_body::<T>(&req("/x", "")).unwrap_err();
        assert_eq!(e.status, 400);
        let r = req("/x", "{\"name\": \"n\"}");
        assert_eq!(JsonBody::<T>::of(&r).parse().unwrap().name, "n");
        assert_eq!(
            JsonBody::<T>::of(&req("/x", "{"))
                .parse()
                .unwrap_err()
                .status,
            400
        );
        let resp = error_response("/x", &e);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(v["statusCode"], 400);
        assert_eq!(v["source"], "DAYTONA_API");
    }
}
