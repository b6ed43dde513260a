//! Resource-usage history of the sandboxes of a runner.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/sandboxes/{id}/metrics?from=MS&to=MS` | 200 [`SandboxMetrics`]: the samples in `[from, to]`, oldest first; 404 `SANDBOX_NOT_FOUND` for a sandbox the agent does not hold |
//!
//! The agent samples the toolbox daemon of every started sandbox (`GET /system/metrics`) every
//! `intervalSecs` seconds and keeps the samples in memory, at most `capacity` per sandbox (and
//! none older than its retention). They are forgotten when the sandbox is destroyed, and lost
//! when the agent restarts: the history is best effort, never a record.

use serde::{Deserialize, Serialize};

/// Query of `GET /v1/sandboxes/{id}/metrics`: an inclusive range in unix milliseconds; an absent
/// bound is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase")]
pub struct MetricsQuery {
    /// Earliest sample time, unix milliseconds (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Latest sample time, unix milliseconds (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
}

impl MetricsQuery {
    /// Whether a sample taken at `at_ms` is in the range.
    pub fn holds(&self, at_ms: i64) -> bool {
        self.from.is_none_or(|f| at_ms >= f) && self.to.is_none_or(|t| at_ms <= t)
    }
}

/// One sample of a sandbox's daemon (`GET /system/metrics`), stamped by the agent when it
/// arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricSample {
    /// When the agent took the sample, unix milliseconds.
    pub timestamp_ms: i64,
    /// CPUs the sandbox may use (its limit rounded up, at least 1).
    pub cpu_count: u32,
    /// Average CPU use since the previous sample, percent of the limit (0..=100).
    pub cpu_used_pct: f64,
    pub mem_used: u64,
    pub mem_total: u64,
    pub mem_cache: u64,
    pub disk_used: u64,
    pub disk_total: u64,
    pub disk_free: u64,
}

/// Answer of `GET /v1/sandboxes/{id}/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SandboxMetrics {
    /// The samples in range, oldest first.
    pub samples: Vec<MetricSample>,
    /// Seconds between two samples.
    pub interval_secs: u32,
    /// Most samples kept per sandbox.
    pub capacity: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_inclusive_and_open_without_bounds() {
        let q = MetricsQuery {
            from: Some(10),
            to: Some(20),
        };
        assert!(q.holds(10) && q.holds(20) && q.holds(15));
        assert!(!q.holds(9) && !q.holds(21));
        assert!(MetricsQuery::default().holds(i64::MIN));
        let from_only = MetricsQuery {
            from: Some(5),
            to: None,
        };
        assert!(from_only.holds(i64::MAX) && !from_only.holds(4));
    }

    #[test]
    fn wire_names_are_camel_case() {
        let v = serde_json::to_value(MetricSample {
            timestamp_ms: 1,
            cpu_count: 2,
            cpu_used_pct: 3.5,
            mem_used: 4,
            mem_total: 5,
            mem_cache: 6,
            disk_used: 7,
            disk_total: 8,
            disk_free: 9,
        })
        .expect("json");
        assert_eq!(v["timestampMs"], 1);
        assert_eq!(v["cpuUsedPct"], 3.5);
        assert_eq!(v["diskFree"], 9);
    }
}
