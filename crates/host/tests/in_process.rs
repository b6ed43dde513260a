//! The runtime as a library, with no Cove backend: load a manifest, serve it in-process, and
//! check that a body refused on its `Content-Length` never costs an instance, while a chunked
//! one is cut off inside the instance that reads it.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cove_host::app::App;
use cove_host::load::{HostSettings, load};
use cove_host::manifest::Manifest;
use cove_host::runtime::InstanceLimits;
use cove_host::server::{ServerLimits, serve};
use cove_host::variables::AppVariables;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn echo_wasm() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/wasm/host_echo.wasm");
    assert!(
        path.exists(),
        "test component {} is not built; run `cargo build --target wasm32-wasip2 --profile wasm -p host-echo`",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// Serves an app with `small` (bodies up to 1000 bytes) at `/small/...`; returns the app and
/// its address.
async fn start(cache: &Path) -> (Arc<App>, String) {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "in-process"
[[trigger.http]]
route = "/small/..."
component = "small"
[component.small]
source = "{}"
[component.small.variables]
max_request_body_bytes = "1000"
"#,
        echo_wasm().display()
    );
    let manifest = Manifest::parse(&manifest, Path::new("/")).unwrap();
    let variables = AppVariables::resolve(&manifest.variables, &HashMap::new(), |_| None).unwrap();
    let settings = HostSettings {
        limits: InstanceLimits {
            request_timeout: Duration::from_secs(10),
            max_memory_bytes: 64 << 20,
            instance_reuse: 1,
        },
        max_instances: 8,
        cache_dir: cache.to_owned(),
    };
    let app = load(&manifest, &variables, &settings).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = app.clone();
    tokio::spawn(async move {
        serve(
            listener,
            served,
            ServerLimits::default(),
            std::future::pending(),
        )
        .await
    });
    (app, addr)
}

/// Sends `head` and then `body`, returns everything the server sent before closing.
async fn exchange(addr: &str, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn content_length_past_the_limit_costs_no_instance() {
    let cache = tempfile::tempdir().unwrap();
    let (app, addr) = start(cache.path()).await;
    assert_eq!(app.instantiations("small"), Some(0));

    let head =
        "POST /small/body HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5000\r\n\r\n";
    let r = exchange(&addr, head, &[b'x'; 5000]).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(
        r.contains("\"statusCode\":413") && r.contains("Payload Too Large"),
        "{r}"
    );
    assert_eq!(
        app.instantiations("small"),
        Some(0),
        "an instance was created for a refused body"
    );

    // A chunked body has no declared length: an instance reads it, and is cut off at 1000 bytes.
    let head = "POST /small/body HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n";
    let chunk = format!("1388\r\n{}\r\n0\r\n\r\n", "y".repeat(5000));
    let r = exchange(&addr, head, chunk.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert_eq!(app.instantiations("small"), Some(1));

    // Within the limit the guest gets the whole body.
    let head =
        "POST /small/body HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 1000\r\n\r\n";
    let r = exchange(&addr, head, &[b'z'; 1000]).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("read:1000"),
        "{r}"
    );
    assert_eq!(app.instantiations("small"), Some(2));
}
