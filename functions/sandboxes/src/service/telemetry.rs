//! `GET /sandbox/{id}/telemetry/metrics?from=&to=&metricNames=` (CONTRACT §4.4): a sandbox's
//! resource usage over a time range, in Daytona's shape ([`MetricsResponse`]: one series per
//! metric, each `{timestamp, value}` point one sample).
//!
//! The samples are the runner agent's (`GET /v1/sandboxes/{id}/metrics`): it samples the
//! sandbox's daemon every few seconds while the sandbox is started and keeps the samples in
//! memory (see `runner-agent/src/metrics.rs`). So, unlike Daytona's OpenTelemetry store:
//! * a sandbox on no runner (never scheduled, archived) or whose runner no longer knows it has
//!   no samples: the answer is 200 with no series, not an error;
//! * samples are lost when the runner agent restarts, and last at most its retention (24 h).
//!
//! `from` and `to` are required ISO 8601 timestamps (an offset `Z`, `+00:00` or `+0000`, or none
//! for UTC, as the Python SDK sends a naive datetime); `from` after `to` is 400. `metricNames` (repeated or
//! comma-separated) narrows the series; unknown names are ignored, none asks for all of
//! [`SandboxMetric::ALL`].

use cove_api_types::ApiError;
use cove_api_types::telemetry::{MetricDataPoint, MetricSeries, MetricsResponse, SandboxMetric};
use cove_edge::runner_client::{ClientError, RunnerClient};
use cove_edge::store_error::IntoApi;
use cove_runner_api::{MetricSample, MetricsQuery};
use time::OffsetDateTime;

use super::{Call, find};

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRange {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// The metrics to answer, each once, in [`SandboxMetric::ALL`] order.
    pub metrics: Vec<SandboxMetric>,
}

impl MetricsRange {
    /// Validates the query parameters (`names`: the values of `metricNames`).
    pub fn parse(from: Option<&str>, to: Option<&str>, names: &[String]) -> Result<Self, ApiError> {
        let required = |name: &str, v: Option<&str>| {
            let v = v
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))?;
            super::listing::instant(name, v.trim())
        };
        let (from, to) = (required("from", from)?, required("to", to)?);
        if from > to {
            return Err(ApiError::bad_request("from must not be after to"));
        }
        let metrics = if names.is_empty() {
            SandboxMetric::ALL.to_vec()
        } else {
            SandboxMetric::ALL
                .into_iter()
                .filter(|m| names.iter().any(|n| n.trim() == m.as_str()))
                .collect()
        };
        Ok(Self { from, to, metrics })
    }

    /// The range as the runner takes it (unix milliseconds, inclusive).
    fn query(&self) -> MetricsQuery {
        let ms = |t: OffsetDateTime| {
            i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
        };
        MetricsQuery {
            from: Some(ms(self.from)),
            to: Some(ms(self.to)),
        }
    }
}

/// The value of `metric` in a sample.
fn value(metric: SandboxMetric, s: &MetricSample) -> f64 {
    match metric {
        SandboxMetric::CpuUtilization => s.cpu_used_pct,
        SandboxMetric::CpuLimit => f64::from(s.cpu_count),
        SandboxMetric::MemoryUsage => s.mem_used as f64,
        SandboxMetric::MemoryLimit => s.mem_total as f64,
        SandboxMetric::MemoryCache => s.mem_cache as f64,
        SandboxMetric::FilesystemUsage => s.disk_used as f64,
        SandboxMetric::FilesystemTotal => s.disk_total as f64,
        SandboxMetric::FilesystemAvailable => s.disk_free as f64,
    }
}

/// The wire timestamp of a sample (ISO 8601 UTC, milliseconds).
fn timestamp(s: &MetricSample) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.timestamp_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    cove_api_types::time::format_rfc3339(t)
}

/// Pivots samples (oldest first) into one series per metric; no series without samples.
pub fn series(samples: &[MetricSample], metrics: &[SandboxMetric]) -> MetricsResponse {
    if samples.is_empty() {
        return MetricsResponse::default();
    }
    let stamps: Vec<String> = samples.iter().map(timestamp).collect();
    MetricsResponse {
        series: metrics
            .iter()
            .map(|&m| MetricSeries {
                metric_name: m.as_str().to_owned(),
                data_points: samples
                    .iter()
                    .zip(&stamps)
                    .map(|(s, t)| MetricDataPoint {
                        timestamp: t.clone(),
                        value: value(m, s),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The caller's sandbox (404 for another organization's) first, then the range (`parse`, so
/// that a caller who may not see the sandbox never learns what the query would have been
/// refused for), then its runner's samples.
pub async fn metrics(
    call: &Call<'_>,
    id_or_name: &str,
    parse: impl FnOnce() -> Result<MetricsRange, ApiError>,
) -> Result<MetricsResponse, ApiError> {
    let rec = find(call, id_or_name).await?;
    let range = parse()?;
    if range.metrics.is_empty() {
        return Ok(MetricsResponse::default());
    }
    let Some(runner_id) = rec.runner_id.as_ref() else {
        return Ok(MetricsResponse::default());
    };
    let runner = call.env.store.runners().get(runner_id).await.api()?;
    let Some((runner, url)) = runner.and_then(|r| {
        let url = r.api_url.clone().filter(|u| !u.is_empty())?;
        Some((r, url))
    }) else {
        return Ok(MetricsResponse::default());
    };
    match RunnerClient::new(url, &runner.api_key)
        .sandbox_metrics(rec.id.as_str(), range.query())
        .await
    {
        Ok(m) => Ok(series(&m.samples, &range.metrics)),
        Err(ClientError::Status { status: 404, .. }) => Ok(MetricsResponse::default()),
        Err(e) => {
            tracing::warn!(sandbox = %rec.id, runner = %runner.id, error = %e, "the runner did not answer with the sandbox's metrics");
            Err(ApiError::service_unavailable(
                "the sandbox's runner did not answer; try again",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: i64, pct: f64) -> MetricSample {
        MetricSample {
            timestamp_ms: ms,
            cpu_count: 2,
            cpu_used_pct: pct,
            mem_used: 10,
            mem_total: 20,
            mem_cache: 3,
            disk_used: 40,
            disk_total: 50,
            disk_free: 9,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn range_parses_the_sdks_timestamps() {
        // TypeScript (toISOString), Python (`%Y-%m-%dT%H:%M:%S.%f%z`, aware and naive).
        for (from, to) in [
            ("2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z"),
            (
                "2026-01-01T00:00:00.000000+0000",
                "2026-01-01T01:00:00.000000+0000",
            ),
            ("2026-01-01T00:00:00.000000", "2026-01-01T01:00:00.000000"),
            ("2026-01-01T01:00:00+01:00", "2026-01-01T01:00:00 00:00"),
        ] {
            let r = MetricsRange::parse(Some(from), Some(to), &[]).expect(from);
            assert_eq!(r.query().from, Some(1_767_225_600_000), "{from}");
            assert_eq!(r.query().to, Some(1_767_229_200_000), "{to}");
            assert_eq!(r.metrics, SandboxMetric::ALL);
        }
    }

    #[test]
    fn bad_ranges_are_400() {
        let t = Some("2026-01-01T00:00:00Z");
        for (from, to) in [
            (None, t),
            (t, None),
            (Some(""), t),
            (Some("yesterday"), t),
            (t, Some("2026-13-01T00:00:00Z")),
            (Some("2026-01-01T00:00:01Z"), t),
        ] {
            let e = MetricsRange::parse(from, to, &[]).expect_err("refused");
            assert_eq!(e.status, 400, "{from:?} {to:?}");
        }
        // from == to is a (one instant) range.
        assert!(MetricsRange::parse(t, t, &[]).is_ok());
    }

    #[test]
    fn metric_names_filter_and_unknown_ones_are_ignored() {
        let t = Some("2026-01-01T00:00:00Z");
        let r = MetricsRange::parse(
            t,
            t,
            &names(&[
                "daytona.sandbox.memory.usage",
                "daytona.sandbox.cpu.limit",
                "nope",
            ]),
        )
        .expect("ok");
        assert_eq!(
            r.metrics,
            [SandboxMetric::CpuLimit, SandboxMetric::MemoryUsage]
        );
        let r = MetricsRange::parse(t, t, &names(&["nope"])).expect("ok");
        assert!(r.metrics.is_empty());
    }

    #[test]
    fn samples_pivot_into_series_sharing_timestamps() {
        let samples = [
            sample(1_767_225_600_000, 12.5),
            sample(1_767_225_615_250, 50.0),
        ];
        let r = series(&samples, &SandboxMetric::ALL);
        assert_eq!(r.series.len(), SandboxMetric::ALL.len());
        let cpu = &r.series[0];
        assert_eq!(cpu.metric_name, "daytona.sandbox.cpu.utilization");
        let points: Vec<(&str, f64)> = cpu
            .data_points
            .iter()
            .map(|p| (p.timestamp.as_str(), p.value))
            .collect();
        assert_eq!(
            points,
            [
                ("2026-01-01T00:00:00.000Z", 12.5),
                ("2026-01-01T00:00:15.250Z", 50.0)
            ]
        );
        let by_name = |n: &str| {
            r.series
                .iter()
                .find(|s| s.metric_name == n)
                .map(|s| s.data_points[0].value)
        };
        assert_eq!(by_name("daytona.sandbox.cpu.limit"), Some(2.0));
        assert_eq!(by_name("daytona.sandbox.memory.limit"), Some(20.0));
        assert_eq!(by_name("daytona.sandbox.memory.cache"), Some(3.0));
        assert_eq!(by_name("daytona.sandbox.filesystem.usage"), Some(40.0));
        assert_eq!(by_name("daytona.sandbox.filesystem.total"), Some(50.0));
        assert_eq!(by_name("daytona.sandbox.filesystem.available"), Some(9.0));
        assert_eq!(series(&[], &SandboxMetric::ALL), MetricsResponse::default());
    }
}
