//! `cove_edge::runner_client` over real HTTP: against an in-process peer that answers like the
//! agent (every error shape, auth header, bodies), and against the real `cove-runner` binary,
//! simulated runtime (see `runner_agent` below).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cove_edge::runner_client::{ClientError, RunnerClient};
use cove_runner_api::{BackupResponse, ErrorEnvelope, SandboxSpec, SandboxState, SandboxStatus};

const TOKEN: &str = "tok-123";

/// `(method, sandbox id, content-type)` of each request the fake agent saw.
type Request = (String, String, Option<String>);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

fn envelope(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let body = ErrorEnvelope {
        path: "/v1/x".into(),
        timestamp: "2026-01-01T00:00:00.000Z".into(),
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("").into(),
        message: message.into(),
        code: code.map(str::to_owned),
        source: cove_runner_api::RUNNER_SOURCE.into(),
    };
    (status, Json(body)).into_response()
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn status(id: &str, state: SandboxState, generation: u64) -> SandboxStatus {
    let mut s = SandboxStatus::destroyed(id);
    s.state = state;
    s.generation = generation;
    s
}

async fn put(
    State(seen): State<Seen>,
    Path(id): Path<String>,
    h: HeaderMap,
    Json(spec): Json<SandboxSpec>,
) -> Response {
    seen.0.lock().unwrap().push((
        "PUT".into(),
        id.clone(),
        h.get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    ));
    if !authorized(&h) {
        return envelope(StatusCode::UNAUTHORIZED, "invalid runner token", None);
    }
    if spec.generation == 0 {
        return envelope(
            StatusCode::CONFLICT,
            "generation 0 is older than 3",
            Some("STALE_GENERATION"),
        );
    }
    Json(status(&id, SandboxState::Started, spec.generation)).into_response()
}

async fn read(Path(id): Path<String>, h: HeaderMap) -> Response {
    if !authorized(&h) {
        return envelope(StatusCode::UNAUTHORIZED, "invalid runner token", None);
    }
    match id.as_str() {
        "missing" => envelope(
            StatusCode::NOT_FOUND,
            "sandbox missing not found",
            Some("NOT_FOUND"),
        ),
        "plain" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "empty" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "garbage" => (StatusCode::OK, "not json").into_response(),
        _ => Json(status(&id, SandboxState::Stopped, 2)).into_response(),
    }
}

async fn delete(Path(id): Path<String>) -> Response {
    Json(SandboxStatus::destroyed(&id)).into_response()
}

/// The agent names backups (the request body may be empty).
async fn backup(Path(id): Path<String>) -> Response {
    if id == "busy" {
        return envelope(
            StatusCode::CONFLICT,
            "sandbox is not started",
            Some("INVALID_STATE"),
        );
    }
    (
        StatusCode::CREATED,
        Json(BackupResponse {
            image: format!("cove-backup/{id}:1"),
            image_id: "sha256:abc".into(),
        }),
    )
        .into_response()
}

async fn fake_agent() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/sandboxes/{id}", get(read).put(put).delete(delete))
        .route("/v1/sandboxes/{id}/backup", post(backup))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A trailing slash in the runner's apiUrl is tolerated.
    (format!("http://{addr}/"), seen)
}

#[tokio::test]
async fn successful_calls_decode_the_agent_answers() {
    let (url, seen) = fake_agent().await;
    let c = RunnerClient::new(&url, TOKEN);
    let mut spec = SandboxSpec::new("img:1");
    spec.generation = 4;
    let s = c.put_sandbox("sb1", &spec).await.unwrap();
    assert_eq!(
        (s.id.as_str(), s.state, s.generation),
        ("sb1", SandboxState::Started, 4)
    );
    assert_eq!(
        seen.0.lock().unwrap().as_slice(),
        &[("PUT".into(), "sb1".into(), Some("application/json".into()))]
    );
    let s = c.get_sandbox("sb1").await.unwrap();
    assert_eq!(s.state, SandboxState::Stopped);
    let s = c.destroy_sandbox("sb1").await.unwrap();
    assert_eq!(s.state, SandboxState::Destroyed);
    let b = c.backup("sb1").await.unwrap();
    assert_eq!(b.image, "cove-backup/sb1:1", "the image the agent named");
    assert_eq!(b.image_id, "sha256:abc");
    assert_eq!(
        c.toolbox_url("sb1"),
        format!("{}v1/sandboxes/sb1/toolbox", url)
    );
}

#[tokio::test]
async fn refusals_map_to_status_with_the_envelope_message_and_code() {
    let (url, _) = fake_agent().await;
    let c = RunnerClient::new(&url, TOKEN);
    let mut spec = SandboxSpec::new("img:1");
    spec.generation = 0;
    let e = c.put_sandbox("sb1", &spec).await.unwrap_err();
    assert_eq!(
        (e.status(), e.message(), e.code()),
        (
            Some(409),
            "generation 0 is older than 3",
            Some("STALE_GENERATION")
        )
    );
    let e = c.get_sandbox("missing").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("NOT_FOUND")));
    let e = c.backup("busy").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));

    // Bodies that are not an envelope: the text, else the reason phrase.
    let e = c.get_sandbox("plain").await.unwrap_err();
    assert_eq!(
        (e.status(), e.message(), e.code()),
        (Some(500), "boom", None)
    );
    let e = c.get_sandbox("empty").await.unwrap_err();
    assert_eq!(
        (e.status(), e.message(), e.code()),
        (Some(503), "Service Unavailable", None)
    );
    // A 2xx that is not what the route returns is not a usable answer.
    assert!(matches!(
        c.get_sandbox("garbage").await,
        Err(ClientError::NoAnswer { .. } | ClientError::Unreachable { .. })
    ));

    // The token goes in the Authorization header.
    let wrong = RunnerClient::new(&url, "wrong");
    let e = wrong.get_sandbox("sb1").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
}

#[tokio::test]
async fn a_runner_that_does_not_answer_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = RunnerClient::new(format!("http://{addr}"), TOKEN);
    let started = std::time::Instant::now();
    let e = c.get_sandbox("sb1").await.unwrap_err();
    match &e {
        ClientError::Unreachable { url, .. } => assert!(url.contains(&addr.to_string()), "{url}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.status(), None);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A URL that is not one.
    let c = RunnerClient::new("not a url", TOKEN);
    assert!(matches!(
        c.get_sandbox("x").await,
        Err(ClientError::NoAnswer { .. } | ClientError::Unreachable { .. })
    ));
}

/// The client against the real agent binary (simulated runtime, no Docker: the agent's own
/// suite covers Docker): create, read, stale generation, destroy.
mod runner_agent {
    use cove_testkit::{Agent, AgentOptions, FAKE_IMAGE};

    use super::*;

    fn start_agent() -> Agent {
        Agent::start(AgentOptions::fake().token(TOKEN)).unwrap()
    }

    #[tokio::test]
    async fn against_the_real_agent() {
        let img = FAKE_IMAGE.to_owned();
        let agent = start_agent();
        let c = RunnerClient::new(agent.url(), TOKEN);
        let id = format!("{}-sb", agent.runner_id());

        let mut spec = SandboxSpec::new(img.clone());
        spec.generation = 2;
        let s = c.put_sandbox(&id, &spec).await.unwrap();
        assert_eq!((s.state, s.generation), (SandboxState::Started, 2), "{s:?}");
        let s = c.get_sandbox(&id).await.unwrap();
        assert_eq!(s.state, SandboxState::Started);

        // An older generation is refused with the agent's envelope.
        let mut old = spec.clone();
        old.generation = 1;
        let e = c.put_sandbox(&id, &old).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(409), Some("STALE_GENERATION")),
            "{e:?}"
        );

        // Wrong token: 401 from the agent.
        let e = RunnerClient::new(agent.url(), "nope")
            .get_sandbox(&id)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401), "{e:?}");

        let s = c.destroy_sandbox(&id).await.unwrap();
        assert_eq!(s.state, SandboxState::Destroyed);
        let e = c.get_sandbox(&id).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{e:?}");
    }
}
