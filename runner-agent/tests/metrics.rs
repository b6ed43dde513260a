//! The usage history (`GET /v1/sandboxes/{id}/metrics`) of a sandbox in a real container: the
//! agent samples its daemon every second (`--metrics-interval-secs 1`), the range filters, and
//! the history goes with the sandbox.

use std::time::{Duration, Instant};

use cove_runner_api::{MetricsQuery, SandboxMetrics};

use crate::common::{self, Agent, sid};

/// The sandbox's samples once there are at least `n` (fails after 30 s).
async fn samples_at_least(agent: &Agent, id: &str, n: usize) -> SandboxMetrics {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = agent
            .client
            .sandbox_metrics(id, MetricsQuery::default())
            .await
            .expect("metrics");
        if m.samples.len() >= n {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "only {} samples after 30 s",
            m.samples.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_sandboxes_are_sampled_until_destroyed() {
    let agent = Agent::start(&["--metrics-interval-secs", "1"]);
    let id = sid("metrics");
    agent
        .sandbox(&id, |s| {
            s.resources.cpu = Some(1.0);
            s.resources.memory_mib = Some(512);
        })
        .await;
    let m = samples_at_least(&agent, &id, 3).await;
    assert_eq!(m.interval_secs, 1);
    assert!(m.capacity >= 3, "{m:?}");
    for s in &m.samples {
        assert_eq!(s.cpu_count, 1, "{s:?}");
        assert!((0.0..=100.0).contains(&s.cpu_used_pct), "{s:?}");
        // The container's limit, not the host's memory.
        assert_eq!(s.mem_total, 512 << 20, "{s:?}");
        assert!(s.mem_used > 0 && s.mem_used <= s.mem_total, "{s:?}");
        assert!(s.disk_used > 0 && s.disk_used <= s.disk_total, "{s:?}");
        assert!(s.disk_free <= s.disk_total, "{s:?}");
    }
    let times: Vec<i64> = m.samples.iter().map(|s| s.timestamp_ms).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 500), "{times:?}");

    // Inclusive bounds; a range before the first sample is empty.
    let (first, second) = (times[0], times[1]);
    let range = |from, to| MetricsQuery { from, to };
    let got = agent
        .client
        .sandbox_metrics(&id, range(Some(second), None))
        .await
        .expect("from");
    assert_eq!(got.samples.first().map(|s| s.timestamp_ms), Some(second));
    let got = agent
        .client
        .sandbox_metrics(&id, range(Some(first), Some(first)))
        .await
        .expect("one");
    assert_eq!(got.samples.len(), 1);
    let got = agent
        .client
        .sandbox_metrics(&id, range(None, Some(first - 1)))
        .await
        .expect("before");
    assert!(got.samples.is_empty(), "{got:?}");
    let e = agent
        .client
        .sandbox_metrics(&id, range(Some(second), Some(first)))
        .await
        .expect_err("from after to");
    assert_eq!(e.status(), Some(400), "{e}");

    // Destroyed: no history, and no sampling of it any more.
    agent.client.destroy_sandbox(&id).await.expect("destroy");
    let e = agent
        .client
        .sandbox_metrics(&id, MetricsQuery::default())
        .await
        .expect_err("gone");
    assert_eq!(e.status(), Some(404), "{e}");
    assert_eq!(e.code(), Some("SANDBOX_NOT_FOUND"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sandbox_keeps_its_samples_but_gets_no_new_ones() {
    let agent = Agent::start(&["--metrics-interval-secs", "1"]);
    let id = sid("metrics-stop");
    let mut spec = cove_runner_api::SandboxSpec::new(common::image());
    agent.client.put_sandbox(&id, &spec).await.expect("create");
    let before = samples_at_least(&agent, &id, 1).await.samples.len();
    spec.desired_state = cove_runner_api::DesiredState::Stopped;
    spec.generation = 2;
    agent.client.put_sandbox(&id, &spec).await.expect("stop");
    let stopped = samples_at_least(&agent, &id, before).await.samples.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = samples_at_least(&agent, &id, before).await.samples.len();
    // At most one sample of a pass that was under way when the stop landed.
    assert!(later <= stopped + 1, "{stopped} then {later}");
    agent.client.destroy_sandbox(&id).await.expect("destroy");
}

#[tokio::test]
async fn unknown_sandboxes_are_404() {
    let agent = Agent::start_fake(&[]);
    let e = agent
        .client
        .sandbox_metrics("nope-123", MetricsQuery::default())
        .await
        .expect_err("unknown");
    assert_eq!(e.status(), Some(404), "{e}");
}
