//! `GET /api/sandbox/{sandboxIdOrName}/telemetry/metrics` (see `service::telemetry`).

use cove_api_types::telemetry::MetricsResponse;
use cove_edge::responses::Errors;
use cove_edge::router::Params;
use cove_edge::web::{self, Answer, Request};

use super::{State, call, ok};
use crate::service::telemetry::{self, MetricsRange};

/// The sandbox's CPU, memory and disk use over `[from, to]`, one series per metric, sampled by
/// its runner every few seconds while it is started and kept in the runner's memory (24 h at
/// most, lost when the runner restarts). No series when there are no samples in the range.
#[utoipa::path(get, path = "/api/sandbox/{sandboxIdOrName}/telemetry/metrics", tag = "sandbox",
    params(("sandboxIdOrName" = String, Path),
        ("from" = String, Query, format = DateTime, description = "Start of the range (ISO 8601)"),
        ("to" = String, Query, format = DateTime, description = "End of the range (ISO 8601)"),
        ("metricNames" = Option<Vec<String>>, Query, description = "Only these metrics (repeated or comma-separated), e.g. daytona.sandbox.cpu.utilization")),
    responses((status = 200, body = MetricsResponse), Errors),
    security(("bearer" = [])))]
pub(super) async fn sandbox_metrics(s: &State, req: &Request, p: &Params) -> Answer {
    let c = call(s, req).await?;
    let range = || {
        MetricsRange::parse(
            web::query_param(req, "from").as_deref(),
            web::query_param(req, "to").as_deref(),
            &web::query_values(req, "metricNames"),
        )
    };
    ok(&telemetry::metrics(&c, p.get("sandboxIdOrName"), range).await?)
}
