//! The control plane's client of a runner agent: `cove_runner_api`'s one [`Client`] over
//! [`ComponentTransport`] ([`crate::outbound`]: Spin's outbound HTTP inside a component, where
//! the host enforces `allowed_outbound_hosts`; `reqwest` natively), so it works the same inside
//! a component and in native tests.

use std::time::Duration;

use bytes::Bytes;
use cove_runner_api::client::Transport;
pub use cove_runner_api::client::{
    Applied, Client, ClientError, Failure, PutOutcome, TransportError,
};

use crate::outbound::{self, OutboundFailure};

/// The runner client of the control plane's components.
pub type RunnerClient = Client<ComponentTransport>;

/// [`crate::outbound`] as a runner-client transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComponentTransport;

impl Transport for ComponentTransport {
    async fn send(
        &self,
        req: http::Request<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let (method, url) = (req.method().clone(), req.uri().to_string());
        outbound::send_within(req, timeout.unwrap_or(outbound::TIMEOUT))
            .await
            .map_err(|e| {
                tracing::warn!(%method, %url, error = %e.message, "runner unreachable");
                TransportError {
                    failure: match e.failure {
                        OutboundFailure::Connect => Failure::Connect,
                        OutboundFailure::Timeout => Failure::Timeout,
                        OutboundFailure::Other => Failure::Other,
                    },
                    message: e.message,
                }
            })
    }
}
