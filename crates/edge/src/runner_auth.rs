//! Runner authentication: `Authorization: Bearer <runner token>` → the runner's row (through the
//! `RUNNERKEY#<sha256>` pointer). Used by the routes runner agents call (heartbeat, `me`, state reports).

use cove_api_types::ApiError;
use cove_store::runners::RunnerRecord;
use http::header::AUTHORIZATION;

use crate::config::Env;
use crate::store_error::IntoApi;
use crate::web::Request;

/// The runner presenting the request's bearer token; 401 envelope when it is missing or unknown.
pub async fn authenticate_runner(env: &Env, req: &Request) -> Result<RunnerRecord, ApiError> {
    let token = runner_token(req).ok_or_else(ApiError::invalid_credentials)?;
    env.store
        .runners()
        .get_by_api_key(token)
        .await
        .api()?
        .ok_or_else(ApiError::invalid_credentials)
}

/// The bearer token when it has the shape of a runner token (64 hex characters).
pub fn runner_token(req: &Request) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && token.len() == 64
        && token.bytes().all(|b| b.is_ascii_hexdigit()))
    .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request {
        let mut b = http::Request::builder().uri("/api/runners/me");
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(bytes::Bytes::new()).unwrap()
    }

    #[test]
    fn only_runner_shaped_bearer_tokens() {
        let t = "ab".repeat(32);
        assert_eq!(
            runner_token(&req(Some(&format!("Bearer {t}")))),
            Some(t.as_str())
        );
        assert_eq!(
            runner_token(&req(Some(&format!("bearer {t} ")))),
            Some(t.as_str())
        );
        assert_eq!(runner_token(&req(None)), None);
        assert_eq!(runner_token(&req(Some("Bearer dtn_abc"))), None);
        assert_eq!(runner_token(&req(Some(&format!("Basic {t}")))), None);
        assert_eq!(
            runner_token(&req(Some(&format!("Bearer {}", "zz".repeat(32))))),
            None
        );
    }
}
