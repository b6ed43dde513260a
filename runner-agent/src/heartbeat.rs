//! Heartbeats to the control plane (`POST /api/runners/healthcheck`, ARCH §2) and host metrics.
//!
//! When the control plane answers 401 or 404 (an admin deleted the runner), the agent logs it
//! once, and heartbeats and state reports back off to one attempt every
//! `--revoked-backoff-secs` (60 s) instead of a tight loop; sandboxes keep being served. A
//! heartbeat accepted again lifts the back-off (and held state reports are sent).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cove_runner_api::client::ControlPlaneClient;
use cove_runner_api::{Healthcheck, RunnerMetrics, ServiceHealth};

use crate::reconciler::Reconciler;

/// Host capacity (cpu count, memory and disk of the data dir's filesystem, usage percentages).
pub fn host_metrics(data_dir: &Path) -> RunnerMetrics {
    let cpu = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut m = RunnerMetrics {
        cpu,
        ..Default::default()
    };
    if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
        let kib = |key: &str| {
            meminfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(total), Some(avail)) = (kib("MemTotal:"), kib("MemAvailable:")) {
            m.memory_gib = total / (1024.0 * 1024.0);
            if total > 0.0 {
                m.current_memory_usage_percentage = 100.0 * (total - avail) / total;
            }
        }
    }
    if let Ok(st) = rustix::fs::statvfs(data_dir) {
        let total = st.f_blocks as f64 * st.f_frsize as f64;
        let free = st.f_bavail as f64 * st.f_frsize as f64;
        m.disk_gib = total / f64::from(1u32 << 30);
        if total > 0.0 {
            m.current_disk_usage_percentage = 100.0 * (total - free) / total;
        }
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg")
        && let Some(one) = load
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
    {
        m.current_cpu_usage_percentage = (100.0 * one / f64::from(cpu)).min(100.0);
    }
    m
}

/// The healthcheck body for the current state.
pub async fn payload(rec: &Reconciler) -> Healthcheck {
    let cfg = rec.config();
    let snapshots = rec.snapshots().await;
    let mut metrics = rec.metrics().await;
    metrics.current_snapshot_count = u32::try_from(snapshots.len()).unwrap_or(u32::MAX);
    Healthcheck {
        domain: None,
        api_url: cfg
            .api_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cfg.listen)),
        proxy_url: None,
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        metrics,
        service_health: vec![ServiceHealth {
            service_name: "docker".into(),
            healthy: true,
            error_reason: None,
        }],
        snapshots,
    }
}

/// Whether the control plane still knows this runner (shared by heartbeats and reports).
#[derive(Debug, Default)]
pub struct Standing {
    revoked: AtomicBool,
}

impl Standing {
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }

    /// Records a 401/404 from the control plane; logs only the first one.
    pub fn revoke(&self, status: u16, backoff: std::time::Duration) {
        if !self.revoked.swap(true, Ordering::SeqCst) {
            tracing::error!(
                status,
                backoff_secs = backoff.as_secs(),
                "the control plane no longer knows this runner (deleted?): heartbeats and state reports back off; sandboxes keep running"
            );
        }
    }

    fn restore(&self) {
        if self.revoked.swap(false, Ordering::SeqCst) {
            tracing::info!("the control plane accepts this runner again");
        }
    }
}

/// Whether a control-plane answer says the runner is gone (its token no longer works).
pub fn is_revocation(e: &cove_runner_api::client::ClientError) -> bool {
    matches!(e.status(), Some(401 | 404))
}

/// Sends a heartbeat every `cfg.heartbeat` (every back-off period while revoked) until the
/// process ends.
pub async fn run(rec: Arc<Reconciler>, client: ControlPlaneClient, standing: Arc<Standing>) {
    let backoff = rec.config().timeouts.revoked_backoff;
    loop {
        let body = payload(&rec).await;
        match client.healthcheck(&body).await {
            Ok(()) => standing.restore(),
            Err(e) if is_revocation(&e) => standing.revoke(e.status().unwrap_or(0), backoff),
            Err(e) => tracing::warn!(error = %crate::error::chain(&e), "heartbeat failed"),
        }
        let wait = if standing.is_revoked() {
            backoff
        } else {
            rec.config().heartbeat
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::runtime::fake::FakeRuntime;
    use cove_runner_api::SandboxSpec;

    #[tokio::test]
    async fn payload_counts_started_sandboxes() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = Config::for_tests(dir.path().to_path_buf());
        cfg.api_url = Some("http://runner-1:3003".into());
        let rt = Arc::new(FakeRuntime::new(
            dir.path().join("fake"),
            &["img:1".into(), "other:2".into()],
        ));
        let rec = Reconciler::new(cfg, rt, dir.path().join("tb"));
        let mut spec = SandboxSpec::new("img:1");
        spec.resources.cpu = Some(2.0);
        spec.resources.memory_mib = Some(2048);
        rec.apply("a", spec).await.expect("a");
        rec.apply("b", SandboxSpec::new("img:1")).await.expect("b");
        let h = payload(&rec).await;
        assert_eq!(h.api_url, "http://runner-1:3003");
        assert_eq!(h.metrics.current_started_sandboxes, 2);
        assert!((h.metrics.current_allocated_cpu - 3.0).abs() < 1e-9);
        assert!((h.metrics.current_allocated_memory_gib - 3.0).abs() < 1e-9);
        assert!(h.metrics.cpu >= 1);
        assert!(h.metrics.memory_gib > 0.0);
        let v = serde_json::to_value(&h).expect("json");
        assert_eq!(v["metrics"]["currentStartedSandboxes"], 2);
        assert_eq!(v["appVersion"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["snapshots"], serde_json::json!(["img:1"]));
        assert_eq!(v["metrics"]["currentSnapshotCount"], 1);
    }

    /// The client really POSTs to `/api/runners/healthcheck` with the bearer token.
    #[tokio::test]
    async fn heartbeat_reaches_the_control_plane() {
        use axum::routing::post;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, serde_json::Value)>(4);
        let app = axum::Router::new().route(
            "/api/runners/healthcheck",
            post(
                move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                    let tx = tx.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let _ = tx.send((auth, body.0)).await;
                        "ok"
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = Config::for_tests(dir.path().to_path_buf());
        cfg.heartbeat = std::time::Duration::from_millis(50);
        let rt = Arc::new(FakeRuntime::new(dir.path().join("fake"), &[]));
        let rec = Reconciler::new(cfg, rt, dir.path().join("tb"));
        let client = ControlPlaneClient::new(format!("http://{addr}"), "test-token");
        let task = tokio::spawn(run(rec, client, Arc::default()));
        let (auth, body) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("heartbeat in time")
            .expect("body");
        task.abort();
        assert_eq!(auth, "Bearer test-token");
        assert!(body["metrics"]["cpu"].as_u64().is_some());
    }
}
