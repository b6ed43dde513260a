//! Calls the private `lifecycle` component (`POST /sweep`) on a timer, in-process.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use cove_host::app::App;
use cove_host::outbound::{InternalDispatch, InternalTarget};

/// The component id the timer calls.
pub const LIFECYCLE_COMPONENT: &str = "lifecycle";

/// Starts the timer: one sweep every `every` (the next waits for the previous one to finish).
pub fn spawn(app: Arc<App>, component: String, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep_once(&app, &component).await;
        }
    })
}

/// Runs one sweep and logs what it did.
pub async fn sweep_once(app: &Arc<App>, component: &str) {
    let request = match http::Request::builder()
        .method("POST")
        .uri(format!("http://{component}.spin.internal/sweep"))
        .body(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the lifecycle request");
            return;
        }
    };
    let response = app
        .clone()
        .dispatch(InternalTarget::Component(component.to_owned()), request)
        .await;
    match response {
        Ok(resp) => {
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            if status.is_success() {
                tracing::debug!(report = %text, "lifecycle sweep");
            } else {
                tracing::warn!(%status, body = %text, "lifecycle sweep failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "lifecycle sweep failed"),
    }
}
