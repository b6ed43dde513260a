//! The `lifecycle` edge function: one sweep over the runners and their sandboxes per call.
//!
//! It sits on a **private** route (`route = { private = true }` in `spin.toml`): only the host
//! reaches it (`cove up` dispatches `POST /sweep` to it in-process every `--lifecycle-interval`).
//! A deployment whose Spin host has no timer calls the one public route instead,
//! [`SWEEP_ROUTE`] (`POST /api/lifecycle/sweep`), with `Authorization: Bearer
//! <lifecycle_sweep_token>` (EventBridge Scheduler in `infra/terraform`, a CronJob in
//! `infra/kubernetes`); without that variable the public route is refused. A sweep:
//!
//! 1. marks `unresponsive` every ready/initializing runner whose last heartbeat is older than
//!    `HEARTBEAT_TIMEOUT_SECS` (conditional on the heartbeat it saw, so a heartbeat landing meanwhile
//!    wins), and sets the sandboxes of unresponsive runners that were running (or moving) to
//!    `unknown` (`desiredState` is kept), as Daytona shows the sandboxes of a lost runner; a
//!    runner silent for `runner_lost_minutes` lifecycle minutes is given up: its `unknown`
//!    sandboxes go to `error`, `recoverable` when their last backup is in the internal registry
//!    (`POST /api/sandbox/{id}/recover` restores them on another runner);
//! 2. for runners that are ready again, asks the agent for the real state of each `unknown`
//!    sandbox (found through the due-time index of step 3) and writes it back;
//! 3. reads what is due from the sandboxes' due-time index ([`due`], GSI3, no scan: reads grow
//!    with the number due, not with the table) and acts on it:
//!    - the interval rules ([`intervals`]): auto-stop after `autoStopInterval` idle minutes
//!      (not while the sandbox's daemon reports it busy; an ephemeral sandbox is deleted
//!      instead), auto-archive and auto-delete of stopped sandboxes after `autoArchiveInterval`
//!      / `autoDeleteInterval`, and deletion past a TTL (`autoDestroyAt`) whatever the state;
//!      one minute lasts `lifecycle_minute_secs` (60; tests shorten it);
//!    - sandboxes queued for a runner ([`queue`], `queueTimeout` on create): placed on the first
//!      available runner, or destroyed with `queueTimedOutAt` once their queue timeout passed;
//!    - periodic backups ([`periodic`]): a started sandbox's last backup an hour old → a new one
//!      in the background (no transition), pushed to the internal registry;
//!    - on responsive runners, the state changes left in flight ([`transitions`]): a
//!      transition not settled `cove_transition::PUSH_DEADLINE` after its last push is pushed again
//!      (the agent's `PUT` is idempotent per generation), and after `MAX_ATTEMPTS` pushes or
//!      `MAX_DURATION` in all it is settled as failed (`error`, with a reason). That is the only
//!      place a state change is retried: request handlers answer the transitional state instead;
//! 4. removes the backups of destroyed sandboxes from the runner that holds them (`DELETE
//!    /v1/backups/{id}`), until done (a runner that is gone counts as done);
//! 5. drives snapshots ([`cove_snapshot_jobs::sweep`]): pending ones to an initial runner,
//!    pulls and builds to their outcome or deadline, active ones onto every ready runner,
//!    removed ones off every runner.
//!
//! Every write is conditional (runner: on the seen heartbeat; sandbox: on its version), so sweeps
//! may run concurrently and repeat: a lost race is skipped, the next sweep finishes the job.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

pub mod due;
pub mod intervals;
pub mod periodic;
pub mod queue;
pub mod settings;
pub mod sweep;
pub mod transitions;

use cove_edge::web::{self, Request, Response};
use cove_edge::{ApiError, Env};
use cove_snapshot_jobs::JobSettings;
use http::{Method, StatusCode};

pub use settings::LifecycleSettings;

/// The public, authenticated route of the sweep (for schedulers outside the Spin host).
pub const SWEEP_ROUTE: &str = "/api/lifecycle/sweep";

/// Serves the component: a path under `/api/` came through a public route, so it needs the
/// sweep token ([`authorize`]); the private route's `POST /sweep` goes straight to [`handle`].
pub async fn serve(env: &Env, settings: &LifecycleSettings, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/api/") {
        if path != SWEEP_ROUTE {
            return web::respond(&path, Err(web::no_route(&req)));
        }
        if let Err(e) = authorize(settings, &req) {
            return web::respond(&path, Err(e));
        }
    }
    handle(env, &settings.jobs, req).await
}

/// 401 without a bearer token, 403 with another one; 401 when no token is configured.
pub fn authorize(settings: &LifecycleSettings, req: &Request) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(presented) = presented else {
        return Err(ApiError::invalid_credentials());
    };
    match settings.sweep_token.as_deref() {
        Some(token) if settings::same_secret(token.as_bytes(), presented.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "This route is reserved for the lifecycle scheduler",
        )),
        None => Err(ApiError::unauthorized(
            "The public sweep route is off: no lifecycle_sweep_token is configured",
        )),
    }
}

/// Serves one request: `POST /sweep` (any path ending in `/sweep`) runs one sweep and answers its report.
pub async fn handle(env: &Env, settings: &JobSettings, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let result = if req.method() == Method::POST && path.ends_with("/sweep") {
        sweep::run(env, settings, time::OffsetDateTime::now_utc())
            .await
            .and_then(|report| web::json(StatusCode::OK, &report))
    } else {
        Err(web::no_route(&req))
    };
    web::respond(&path, result.map_err(|e: ApiError| e))
}

cove_edge::component!(crate::serve, settings = crate::LifecycleSettings);
