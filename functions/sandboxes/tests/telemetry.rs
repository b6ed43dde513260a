//! `GET /api/sandbox/{id}/telemetry/metrics` natively, against dynoxide and a simulated runner
//! agent sampling every second (`--metrics-interval-secs 1`; its in-process daemons answer
//! `GET /system/metrics` for real): Daytona's series shape, the range and `metricNames`
//! filters, 400s, another organization's sandbox, a destroyed one.

use cove_edge::Env;
use cove_edge::config::SandboxSettings;
use cove_store::runners::RunnerRecord;
use cove_testkit::api::{Call, Reply};
use cove_testkit::{Agent, AgentOptions, FAKE_IMAGE, Harness};
use serde_json::{Value, json};

const HOST: &str = "cove.test:3000";

struct Fx {
    _h: Harness,
    env: Env,
    settings: SandboxSettings,
    _agent: Agent,
}

async fn fx() -> Fx {
    let h = Harness::new().await;
    let token = RunnerRecord::new("runner-1", "us", &cove_api_types::time::now_rfc3339())
        .unwrap()
        .api_key;
    let agent = Agent::start(
        AgentOptions::fake()
            .token(token)
            .args(["--metrics-interval-secs", "1"]),
    )
    .unwrap();
    h.register_runner(&agent).await.unwrap();
    Fx {
        env: h.env.clone(),
        _h: h,
        settings: SandboxSettings {
            default_snapshot: FAKE_IMAGE.to_owned(),
            ..SandboxSettings::default()
        },
        _agent: agent,
    }
}

impl Fx {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let call =
            Call::simple(method, path, Some(token), None, body.as_deref()).header("host", HOST);
        let resp = sandboxes::handle(&self.env, &self.settings, call.to_request()).await;
        Reply::from_response(resp).checked(&call)
    }

    async fn metrics(&self, token: &str, id: &str, query: &str) -> (u16, Value) {
        let path = format!("/api/sandbox/{id}/telemetry/metrics?{query}");
        self.call("GET", &path, token, None).await
    }
}

fn jwt(sub: &str) -> String {
    cove_testkit::jwt::token(sub)
}

const ALL: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

/// The timestamps of a series.
fn stamps(series: &Value) -> Vec<String> {
    series["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap().to_owned())
        .collect()
}

fn series<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metricName"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[tokio::test]
async fn metrics_of_a_started_sandbox() {
    let f = fx().await;
    let (alice, mallory) = (jwt("alice"), jwt("mallory"));
    let (s, sb) = f
        .call(
            "POST",
            "/api/sandbox",
            &alice,
            Some(json!({"name": "measured"})),
        )
        .await;
    assert_eq!(s, 200, "{sb}");
    let id = sb["id"].as_str().unwrap().to_owned();

    // At least two samples within a few intervals.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let v = loop {
        let (s, v) = f.metrics(&alice, &id, ALL).await;
        assert_eq!(s, 200, "{v}");
        let n = v["series"]
            .as_array()
            .unwrap()
            .first()
            .map_or(0, |s| s["dataPoints"].as_array().unwrap().len());
        if n >= 2 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no samples: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let names: Vec<&str> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metricName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "daytona.sandbox.cpu.utilization",
            "daytona.sandbox.cpu.limit",
            "daytona.sandbox.memory.usage",
            "daytona.sandbox.memory.limit",
            "daytona.sandbox.memory.cache",
            "daytona.sandbox.filesystem.usage",
            "daytona.sandbox.filesystem.total",
            "daytona.sandbox.filesystem.available",
        ]
    );
    // Every series has the same points, oldest first, with millisecond UTC timestamps.
    let times = stamps(&v["series"][0]);
    for s in v["series"].as_array().unwrap() {
        assert_eq!(stamps(s), times, "{s}");
    }
    let mut sorted = times.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, times);
    assert!(
        times.iter().all(|t| t.len() == 24 && t.ends_with('Z')),
        "{times:?}"
    );
    let first = |name: &str| series(&v, name)["dataPoints"][0]["value"].as_f64().unwrap();
    assert!(first("daytona.sandbox.cpu.limit") >= 1.0);
    assert!(first("daytona.sandbox.memory.limit") > 0.0);
    assert!(first("daytona.sandbox.memory.usage") <= first("daytona.sandbox.memory.limit"));
    assert!(first("daytona.sandbox.filesystem.usage") <= first("daytona.sandbox.filesystem.total"));
    let pct = first("daytona.sandbox.cpu.utilization");
    assert!((0.0..=100.0).contains(&pct), "{pct}");

    // metricNames, repeated or comma-separated; unknown ones are ignored.
    for q in [
        "metricNames=daytona.sandbox.memory.usage&metricNames=daytona.sandbox.cpu.limit&metricNames=nope",
        "metricNames=daytona.sandbox.cpu.limit,daytona.sandbox.memory.usage",
    ] {
        let (s, v) = f.metrics(&alice, &id, &format!("{ALL}&{q}")).await;
        assert_eq!(s, 200, "{v}");
        let names: Vec<&str> = v["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metricName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["daytona.sandbox.cpu.limit", "daytona.sandbox.memory.usage"],
            "{q}"
        );
    }

    // The range: exactly one sample, by the name too; the Python SDK's `+0000` offsets;
    // before creation nothing.
    let one = &times[1];
    let (s, v) = f
        .metrics(&alice, "measured", &format!("from={one}&to={one}"))
        .await;
    assert_eq!(
        (s, stamps(&v["series"][0])),
        (200, vec![one.clone()]),
        "{v}"
    );
    let (s, v) = f
        .metrics(
            &alice,
            &id,
            "from=2000-01-01T00:00:00.000000%2B0000&to=2000-01-02T00:00:00.000000%2B0000",
        )
        .await;
    assert_eq!((s, &v), (200, &json!({"series": []})));

    // Bad ranges.
    for q in [
        "to=2100-01-01T00:00:00Z",
        "from=2000-01-01T00:00:00Z",
        "from=soon&to=2100-01-01T00:00:00Z",
        "from=2100-01-01T00:00:00Z&to=2000-01-01T00:00:00Z",
    ] {
        let (s, v) = f.metrics(&alice, &id, q).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert_eq!(v["statusCode"], 400, "{v}");
    }

    // Another organization: not found, whatever the query (valid or not).
    for q in [ALL, "from=bad"] {
        let (s, v) = f.metrics(&mallory, &id, q).await;
        assert_eq!(s, 404, "{v}");
        assert_eq!(
            v["message"],
            format!("Sandbox with ID or name {id} not found")
        );
    }

    // Deleted: its history goes with it (not found once destroyed; while it is being
    // destroyed the runner no longer has samples).
    let (s, _) = f
        .call("DELETE", &format!("/api/sandbox/{id}"), &alice, None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = f.metrics(&alice, &id, ALL).await;
    assert!(
        s == 404 || (s, &v) == (200, &json!({"series": []})),
        "{s} {v}"
    );
}
