//! The public sweep route `POST /api/lifecycle/sweep` (for schedulers outside the Spin host):
//! bearer `lifecycle_sweep_token` only; the private `POST /sweep` needs none.

use bytes::Bytes;
use cove_edge::Env;
use cove_edge::config::{JwtConfig, Settings};
use lifecycle::{LifecycleSettings, SWEEP_ROUTE};

async fn env() -> Env {
    Env {
        store: cove_testkit::store().await,
        jwt: JwtConfig::default(),
    }
}

fn settings(token: Option<&str>) -> LifecycleSettings {
    LifecycleSettings::from_lookup(|name| {
        (name == "lifecycle_sweep_token")
            .then(|| token.map(str::to_owned))
            .flatten()
    })
}

async fn call(
    env: &Env,
    s: &LifecycleSettings,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> u16 {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = lifecycle::serve(env, s, req.body(Bytes::new()).unwrap()).await;
    resp.status().as_u16()
}

#[tokio::test]
async fn the_public_sweep_route_takes_only_the_sweep_token() {
    let env = env().await;
    let on = settings(Some("sweep-secret"));
    assert_eq!(call(&env, &on, "POST", SWEEP_ROUTE, None).await, 401);
    assert_eq!(
        call(&env, &on, "POST", SWEEP_ROUTE, Some("Bearer ")).await,
        401
    );
    assert_eq!(
        call(&env, &on, "POST", SWEEP_ROUTE, Some("Basic c3dlZXA=")).await,
        401
    );
    assert_eq!(
        call(&env, &on, "POST", SWEEP_ROUTE, Some("Bearer wrong")).await,
        403
    );
    assert_eq!(
        call(&env, &on, "POST", SWEEP_ROUTE, Some("Bearer sweep-secretX")).await,
        403
    );
    assert_eq!(
        call(&env, &on, "POST", SWEEP_ROUTE, Some("Bearer sweep-secret")).await,
        200
    );
    assert_eq!(
        call(&env, &on, "POST", SWEEP_ROUTE, Some("bearer sweep-secret")).await,
        200
    );
    // the token opens the sweep only: other methods and paths under /api stay closed
    assert_eq!(
        call(&env, &on, "GET", SWEEP_ROUTE, Some("Bearer sweep-secret")).await,
        404
    );
    assert_eq!(
        call(
            &env,
            &on,
            "POST",
            "/api/lifecycle/other/sweep",
            Some("Bearer sweep-secret")
        )
        .await,
        404
    );
    assert_eq!(
        call(&env, &on, "POST", "/api/sweep", Some("Bearer sweep-secret")).await,
        404
    );
    // the private route (the host's timer) needs no token
    assert_eq!(call(&env, &on, "POST", "/sweep", None).await, 200);
}

#[tokio::test]
async fn without_a_configured_token_the_public_route_is_off() {
    let env = env().await;
    for s in [settings(None), settings(Some("  "))] {
        assert!(s.sweep_token.is_none());
        assert_eq!(
            call(&env, &s, "POST", SWEEP_ROUTE, Some("Bearer anything")).await,
            401
        );
        assert_eq!(call(&env, &s, "POST", SWEEP_ROUTE, None).await, 401);
        assert_eq!(call(&env, &s, "POST", "/sweep", None).await, 200);
    }
}

#[test]
fn the_settings_read_every_job_variable_and_the_token() {
    let job = <cove_snapshot_jobs::JobSettings as Settings>::VARIABLES;
    let all = <LifecycleSettings as Settings>::VARIABLES;
    assert_eq!(all.len(), job.len() + 1);
    assert!(job.iter().all(|v| all.contains(v)));
    assert!(all.contains(&"lifecycle_sweep_token"));
    assert!(!format!("{:?}", settings(Some("sweep-secret"))).contains("sweep-secret"));
}
