//! Whether the sandbox is doing work (Cove's activity rule, beyond Daytona's): a
//! `process/execute` or `code-run` still running, a session command that has not exited, a
//! websocket attached (a followed log). `GET /activity` answers it; the runner agent reads it
//! with its heartbeat and reports changes to the control plane, whose auto-stop waits while the
//! sandbox is busy.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use cove_api_types::toolbox::ActivityResponse;

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::server::AppState;

/// Work in progress of the handlers (session commands are counted from the sessions).
#[derive(Debug, Default)]
pub struct Activity {
    active: AtomicUsize,
    /// When work was last seen in progress (RFC 3339).
    last_busy_at: Mutex<Option<String>>,
}

/// Counts one piece of work while it lives.
#[must_use = "the work is counted while the guard lives"]
pub struct Busy {
    activity: Arc<AppState>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity.activity.mark();
        self.activity.activity.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    /// Counts work in `st` until the guard drops.
    pub fn begin(st: &Arc<AppState>) -> Busy {
        st.activity.active.fetch_add(1, Ordering::AcqRel);
        st.activity.mark();
        Busy {
            activity: Arc::clone(st),
        }
    }

    fn mark(&self) {
        if let Ok(mut last) = self.last_busy_at.lock() {
            *last = Some(cove_api_types::time::now_rfc3339());
        }
    }

    /// What is in progress now, with `running_commands` session commands still running.
    pub fn status(&self, running_commands: usize) -> ActivityResponse {
        let active = self.active.load(Ordering::Acquire);
        let busy = active > 0 || running_commands > 0;
        if busy {
            self.mark();
        }
        ActivityResponse {
            busy,
            running_commands: u32::try_from(running_commands).unwrap_or(u32::MAX),
            attached: u32::try_from(active).unwrap_or(u32::MAX),
            last_busy_at: self.last_busy_at.lock().ok().and_then(|l| l.clone()),
        }
    }
}

/// Work in progress
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/activity", tag = "info",
    operation_id = "GetActivity",
    responses((status = 200, description = "Whether the sandbox is doing work", body = ActivityResponse), DaemonErrors)))]
pub async fn activity(State(st): State<Arc<AppState>>) -> Json<ActivityResponse> {
    let running = st.sessions.running_commands();
    Json(st.activity.status(running))
}
