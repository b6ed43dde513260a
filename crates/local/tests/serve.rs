//! Routing, private components, outbound allow-lists, variables, WASIp2, guest logs.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Backend, Cove, Start, get, manifest};

fn start(dir: &std::path::Path, backend: &str, env: &[(&str, &str)]) -> Cove {
    let manifest = manifest::app(backend);
    Cove::start(Start {
        manifest: &manifest,
        data_dir: dir,
        args: &[],
        env,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_exact_wildcard_and_404_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), "http://127.0.0.1:9", &[]);

    let r = get(&cove.url("/echo/a/b?x=1")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.starts_with("method=GET path=/echo/a/b "),
        "{}",
        r.body
    );
    assert!(r.body.contains("env=from-manifest"), "{}", r.body);
    assert!(r.body.contains("component=echo"), "{}", r.body);
    assert_eq!(r.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));

    // The wildcard prefix itself matches.
    assert_eq!(get(&cove.url("/echo")).await.status, 200);
    // Exact routes match only themselves.
    assert_eq!(get(&cove.url("/exact")).await.status, 200);
    let r = get(&cove.url("/exact/below")).await;
    r.assert_envelope(404, "/exact/below");
    assert_eq!(r.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    // A prefix sharing characters but not a path segment does not match.
    get(&cove.url("/echoes"))
        .await
        .assert_envelope(404, "/echoes");
    let r = get(&cove.url("/api/nothing")).await;
    r.assert_envelope(404, "/api/nothing");
    assert_eq!(r.json()["message"], "Cannot GET /api/nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_component_only_reachable_from_components() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), "http://127.0.0.1:9", &[]);

    // There is no public route to it, whatever the path.
    get(&cove.url("/internal"))
        .await
        .assert_envelope(404, "/internal");
    get(&cove.url("/internal/x"))
        .await
        .assert_envelope(404, "/internal/x");

    // A component granted http://*.spin.internal reaches it in-process.
    let r = get(&cove.url("/echo/call?url=http://internal.spin.internal/hello/there")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .starts_with("status:200 body:method=GET path=/hello/there"),
        "{}",
        r.body
    );
    assert!(r.body.contains("component=internal"), "{}", r.body);

    // An unknown component id is an error, not a hang.
    let r = get(&cove.url("/echo/call?url=http://nobody.spin.internal/")).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.starts_with("error:"), "{}", r.body);

    // A component without the grant is denied.
    let r = get(&cove.url("/stranger/call?url=http://internal.spin.internal/x")).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_outbound_hosts_are_enforced() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The grant comes from the `{{ backend_url }}` template.
    let cove = start(dir.path(), &backend.url, &[]);

    let r = get(&cove.url(&format!("/echo/call?url={}/granted", backend.url))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "status:200 body:backend-ok");
    assert_eq!(backend.connections(), 1);

    // `stranger` has no grant: it gets HttpRequestDenied and no connection is made.
    let r = get(&cove.url(&format!("/stranger/call?url={}/denied", backend.url))).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    // `echo` is granted one port only: another port on the same host is denied too.
    let other_port = format!("http://127.0.0.1:{}", port_of(&backend.url) + 1);
    let r = get(&cove.url(&format!("/echo/call?url={other_port}/x"))).await;
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    let r = get(&cove.url("/echo/call?url=https://example.com/")).await;
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        backend.connections(),
        1,
        "a denied request reached the backend"
    );
    assert!(cove.stderr().contains("outbound request denied"));
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn variables_defaults_overrides_and_scoping() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), "http://127.0.0.1:9", &[]);
    let r = get(&cove.url("/echo/var?name=greeting")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "var:hello"));
    // cove injects the values it manages: here the embedded DynamoDB's URL.
    let r = get(&cove.url("/echo/var?name=dynamo")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("var:http://127.0.0.1:"), "{}", r.body);
    // An application variable the component does not list is invisible to it.
    let r = get(&cove.url("/echo/var?name=unlisted_secret")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.body.contains("Undefined"), "{}", r.body);
    assert!(!r.body.contains("do-not-leak"));
    // A component with no variables reads none.
    let r = get(&cove.url("/stranger/var?name=greeting")).await;
    assert_eq!(r.status, 404, "{r:?}");
    drop(cove);

    // SPIN_VARIABLE_* wins over the default and over cove's own values.
    let dir = tempfile::tempdir().unwrap();
    let cove = start(
        dir.path(),
        "http://127.0.0.1:9",
        &[
            ("SPIN_VARIABLE_GREETING", "bonjour"),
            ("SPIN_VARIABLE_DYNAMODB_ENDPOINT", "http://dynamo.test:8000"),
        ],
    );
    let r = get(&cove.url("/echo/var?name=greeting")).await;
    assert_eq!(r.body, "var:bonjour");
    let r = get(&cove.url("/echo/var?name=dynamo")).await;
    assert_eq!(r.body, "var:http://dynamo.test:8000");
    let r = get(&cove.url("/echo/x")).await;
    assert!(r.body.contains("greeting=bonjour"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn required_variable_without_value_fails_startup() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest::app("http://127.0.0.1:9").replace(
        "greeting = { default = \"hello\" }",
        "greeting = { default = \"hello\" }\nmust_set = { required = true }",
    );
    let stderr = Cove::start_failing(Start {
        manifest: &manifest,
        data_dir: dir.path(),
        args: &[],
        env: &[],
    });
    assert!(stderr.contains("must_set"), "{stderr}");
    assert!(stderr.contains("SPIN_VARIABLE_MUST_SET"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "failed before touching the data dir"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wasip2_incoming_handler_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), "http://127.0.0.1:9", &[]);
    let r = get(&cove.url("/p2/hello?q=1")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "p2 method=GET path=/p2/hello?q=1");
    assert!(cove.stderr().contains("component=p2") && cove.stderr().contains("wasi_http=\"0.2\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_output_is_prefixed_and_traps_are_500() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), "http://127.0.0.1:9", &[]);
    assert_eq!(get(&cove.url("/echo/logme")).await.status, 200);
    get(&cove.url("/echo/trap"))
        .await
        .assert_envelope(500, "/echo/trap");
    // Still serving after a trap.
    assert_eq!(get(&cove.url("/echo/after")).await.status, 200);
    // Guest output is forwarded asynchronously: give the last lines a moment to arrive.
    let mut stderr = cove.stderr();
    for _ in 0..50 {
        if stderr.contains("[echo] trap requested") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stderr = cove.stderr();
    }
    assert!(stderr.contains("\n[echo] echo /echo/logme\n"), "{stderr}");
    assert!(
        stderr.contains("\n[echo] stdout line for /echo/logme\n"),
        "{stderr}"
    );
    assert!(stderr.contains("[echo] trap requested"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_cannot_be_forged_coloured_or_flooded() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), "http://127.0.0.1:9", &[]);
    assert_eq!(get(&cove.url("/echo/ansi")).await.status, 200);
    // Twenty traps in a row: every client gets its 500, the log gets a few ERROR lines.
    for _ in 0..20 {
        get(&cove.url("/echo/trap"))
            .await
            .assert_envelope(500, "/echo/trap");
    }
    let mut stderr = cove.stderr();
    for _ in 0..50 {
        if stderr.matches("[echo] trap requested").count() >= 20 && stderr.contains("ERROR forged")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stderr = cove.stderr();
    }
    // The guest's escape sequence and carriage return arrive as text, on the guest's own line.
    assert!(
        stderr.contains("\n[echo] \\x1b[31mred\\x1b[0m\\r2000-01-01T00:00:00Z ERROR forged\n"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "raw escape in the log:\n{stderr}");
    assert!(
        !stderr.contains('\r'),
        "raw carriage return in the log:\n{stderr}"
    );
    let errors = stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("component failed"))
        .count();
    assert!(
        (1..=5).contains(&errors),
        "{errors} ERROR lines for 20 traps:\n{stderr}"
    );
}
