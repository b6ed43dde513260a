//! Sandbox telemetry wire types: `GET /sandbox/{id}/telemetry/metrics` (CONTRACT §4.4,
//! Daytona's `MetricsResponse`).

use serde::{Deserialize, Serialize};

/// A resource metric of a sandbox, named as Daytona's telemetry names it (the SDKs' `get_metrics`
/// asks for these and maps each to a field of their `SandboxMetrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SandboxMetric {
    /// CPU use, percent of the limit (`cpu_used_pct`).
    CpuUtilization,
    /// CPUs the sandbox may use (`cpu_count`).
    CpuLimit,
    /// Working-set memory, bytes (`mem_used`).
    MemoryUsage,
    /// Memory limit, bytes (`mem_total`).
    MemoryLimit,
    /// Page cache, bytes (`mem_cache`).
    MemoryCache,
    /// Used disk, bytes (`disk_used`).
    FilesystemUsage,
    /// Disk size, bytes (`disk_total`).
    FilesystemTotal,
    /// Disk free for unprivileged use, bytes (beyond the SDKs' fields).
    FilesystemAvailable,
}

impl SandboxMetric {
    /// Every metric, in the order series are answered.
    pub const ALL: [SandboxMetric; 8] = [
        Self::CpuUtilization,
        Self::CpuLimit,
        Self::MemoryUsage,
        Self::MemoryLimit,
        Self::MemoryCache,
        Self::FilesystemUsage,
        Self::FilesystemTotal,
        Self::FilesystemAvailable,
    ];

    /// The wire name (`daytona.sandbox.cpu.utilization`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuUtilization => "daytona.sandbox.cpu.utilization",
            Self::CpuLimit => "daytona.sandbox.cpu.limit",
            Self::MemoryUsage => "daytona.sandbox.memory.usage",
            Self::MemoryLimit => "daytona.sandbox.memory.limit",
            Self::MemoryCache => "daytona.sandbox.memory.cache",
            Self::FilesystemUsage => "daytona.sandbox.filesystem.usage",
            Self::FilesystemTotal => "daytona.sandbox.filesystem.total",
            Self::FilesystemAvailable => "daytona.sandbox.filesystem.available",
        }
    }

    /// The metric of a wire name; `None` for a name Cove does not record.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// One value of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricDataPoint {
    /// ISO 8601 UTC with milliseconds; the same for every metric of one sample.
    pub timestamp: String,
    pub value: f64,
}

/// The values of one metric over the range, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricSeries {
    /// A [`SandboxMetric`] name.
    pub metric_name: String,
    pub data_points: Vec<MetricDataPoint>,
}

/// `GET /sandbox/{id}/telemetry/metrics` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricsResponse {
    /// One series per metric asked for, empty when there are no samples in the range.
    pub series: Vec<MetricSeries>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in SandboxMetric::ALL {
            assert_eq!(SandboxMetric::parse(m.as_str()), Some(m));
        }
        assert_eq!(SandboxMetric::parse("daytona.sandbox.gpu.usage"), None);
    }

    #[test]
    fn wire_shape_is_daytonas() {
        let v = serde_json::to_value(MetricsResponse {
            series: vec![MetricSeries {
                metric_name: SandboxMetric::CpuLimit.as_str().into(),
                data_points: vec![MetricDataPoint {
                    timestamp: "2026-01-01T00:00:00.000Z".into(),
                    value: 2.0,
                }],
            }],
        })
        .expect("json");
        assert_eq!(v["series"][0]["metricName"], "daytona.sandbox.cpu.limit");
        assert_eq!(v["series"][0]["dataPoints"][0]["value"], 2.0);
    }
}
