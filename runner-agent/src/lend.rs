//! The agent's lending socket (`<data-dir>/lend.sock`, [`cove_lend`]): a preview proxy on this
//! host borrows verified connections to the sandboxes' daemons, so that preview traffic goes
//! proxy → daemon instead of proxy → agent → daemon. The checks are the toolbox API's: the
//! runner token, the sandbox started here, the daemon's socket and peer verified
//! ([`crate::toolbox::connect`]).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use cove_lend::{Ask, Refusal};

use crate::error::AgentError;
use crate::reconciler::Reconciler;

/// Binds the lending socket and answers on it in the background; without it (a bind error,
/// logged) previews keep going through the agent's API.
pub fn spawn(rec: &Arc<Reconciler>) {
    let path = rec.config().data_dir.join(cove_lend::SOCKET_NAME);
    match cove_lend::bind(&path) {
        Ok(listener) => {
            tracing::info!(path = %path.display(), "lending daemon connections to local proxies");
            let rec = rec.clone();
            tokio::spawn(cove_lend::serve(listener, move |ask| {
                lend(rec.clone(), ask)
            }));
        }
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "no lending socket: previews go through the agent's API"
        ),
    }
}

async fn lend(rec: Arc<Reconciler>, ask: Ask) -> Result<Option<OwnedFd>, Refusal> {
    if !crate::http::token_ok(ask.token.as_bytes(), rec.config().token.as_bytes()) {
        return Err(refusal(&AgentError::Unauthorized));
    }
    if ask.sandbox_id.is_empty() {
        return Ok(None);
    }
    let target = rec
        .toolbox_target(&ask.sandbox_id)
        .await
        .map_err(|e| refusal(&e))?;
    let unavailable = |source| {
        refusal(&AgentError::ToolboxUnavailable {
            id: target.sandbox_id.clone(),
            source,
        })
    };
    let stream = crate::toolbox::connect_patiently(&target.socket, &target.container_id)
        .await
        .map_err(unavailable)?;
    let std = stream.into_std().map_err(unavailable)?;
    tracing::debug!(sandbox = %target.sandbox_id, "daemon connection lent");
    Ok(Some(OwnedFd::from(std)))
}

fn refusal(e: &AgentError) -> Refusal {
    Refusal::new(e.status().as_u16(), e.code(), e.external_message())
}
