//! Start-up and restart: bootstrap output, the compile cache, admin key rotation, shutdown.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;

use common::{Cove, Start, component, get, manifest};

fn start(dir: &std::path::Path) -> Cove {
    let manifest = manifest::app("http://127.0.0.1:9");
    Cove::start(Start {
        manifest: &manifest,
        data_dir: dir,
        args: &[],
        env: &[],
    })
}

fn is_api_key(key: &str) -> bool {
    key.len() > 20
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_admin_key_and_hits_compile_cache() {
    let dir = tempfile::tempdir().unwrap();

    // First start: a fresh admin key, components compiled.
    let first = start(dir.path());
    let url_line = first
        .stdout
        .iter()
        .find(|l| l.starts_with("DAYTONA_API_URL="))
        .unwrap();
    assert!(
        url_line.starts_with("DAYTONA_API_URL=http://127.0.0.1:") && url_line.ends_with("/api"),
        "{url_line}"
    );
    let key = first.api_key().expect("first start prints DAYTONA_API_KEY");
    assert!(is_api_key(&key), "{key}");
    assert_eq!(first.stdout.last().map(String::as_str), Some("cove ready"));
    let stderr = first.stderr();
    assert!(stderr.contains("cache_hit=false"), "{stderr}");
    assert_eq!(get(&first.url("/echo/x")).await.status, 200);
    let status = first.terminate();
    assert!(
        status.success(),
        "SIGTERM should shut cove down cleanly: {status:?}"
    );
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("data/cache"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 2, "one .cwasm per distinct wasm: {cached:?}");

    // Second start on the same data dir: no new key, nothing recompiled.
    let second = start(dir.path());
    assert!(
        second
            .stdout
            .iter()
            .any(|l| l.starts_with("DAYTONA_API_URL=http://127.0.0.1:"))
    );
    assert_eq!(second.api_key(), None, "{:?}", second.stdout);
    let stderr = second.stderr();
    assert!(stderr.contains("cache_hit=true"), "{stderr}");
    assert!(
        !stderr.contains("cache_hit=false"),
        "recompiled on restart:\n{stderr}"
    );
    assert_eq!(get(&second.url("/echo/x")).await.status, 200);
    drop(second);

    // Another data dir sharing the first one's cache (`--compile-cache`): nothing recompiled.
    let other = tempfile::tempdir().unwrap();
    let cache = dir.path().join("data/cache");
    let shared = Cove::start(Start {
        manifest: &manifest::app("http://127.0.0.1:9"),
        data_dir: other.path(),
        args: &["--compile-cache", cache.to_str().unwrap()],
        env: &[],
    });
    let stderr = shared.stderr();
    assert!(
        stderr.contains("cache_hit=true") && !stderr.contains("cache_hit=false"),
        "a shared compile cache was not used:\n{stderr}"
    );
    assert!(!other.path().join("data/cache").exists());
    drop(shared);

    // rotate-admin-key on the (stopped) data dir prints a new, different key.
    let out = Command::new(env!("CARGO_BIN_EXE_cove"))
        .arg("rotate-admin-key")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("COVE_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let rotated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DAYTONA_API_KEY="))
        .unwrap_or_else(|| panic!("no key in {stdout:?}"));
    assert!(is_api_key(rotated), "{rotated}");
    assert_ne!(rotated, key);
}

#[test]
fn build_runs_commands_and_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "b"
[component.ok]
source = "ok.wasm"
[component.ok.build]
command = "echo built > marker.txt"
workdir = "sub"
[component.bad]
source = "bad.wasm"
[component.bad.build]
command = "exit 3"
"#;
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cove"))
        .args(["build", "--manifest"])
        .arg(dir.path().join("spin.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"bad\"") && stderr.contains("exit 3"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("spin.toml"),
        manifest.replace("exit 3", "true"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cove"))
        .args(["build", "--manifest"])
        .arg(dir.path().join("spin.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sub/marker.txt")).unwrap(),
        "built\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn up_builds_components_whose_source_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let echo = component("host_echo");
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "built"
[[trigger.http]]
route = "/..."
component = "late"
[component.late]
source = "out/late.wasm"
[component.late.build]
command = ["mkdir -p out", "cp '{}' out/late.wasm"]
"#,
        echo.display()
    );
    let cove = Cove::start_building(Start {
        manifest: &manifest,
        data_dir: dir.path(),
        args: &[],
        env: &[],
    });
    assert!(dir.path().join("out/late.wasm").exists());
    let r = get(&cove.url("/anything")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.starts_with("method=GET path=/anything "),
        "{}",
        r.body
    );
}
