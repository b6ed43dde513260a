//! The official SDK's own upload code (`daytona._sync.object_storage.ObjectStorage`, obstore's
//! `S3Store`: path-style, session token, HEAD then PUT, multipart above 5 MiB) against the
//! embedded S3 with scoped credentials: it uploads under its organization's prefix, and the same
//! credentials fail for another organization's prefix.
//!
//! Python: `COVE_PYTHON`, else the venv `scripts/test.sh` makes (`tests/.cache/venv`), which
//! has `daytona==0.226.1` from `tests/requirements.txt`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use cove_local::backends::start_s3;
use cove_local::s3_scope::S3Scope;

const SECRET: &[u8] = b"sdk-upload-secret";
const ORG_A: &str = "7d0c9d0e-2222-4c4e-9d7e-aaaaaaaaaaaa";
const ORG_B: &str = "7d0c9d0e-2222-4c4e-9d7e-bbbbbbbbbbbb";

const SCRIPT: &str = r#"
import json, sys
from daytona._sync.object_storage import ObjectStorage
url, key, secret, token, bucket, org, path = sys.argv[1:8]
store = ObjectStorage(url, key, secret, token, bucket, region="us-east-1")
try:
    print(json.dumps({"hash": store.upload(path, org)}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)}))
"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("COVE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/.cache/venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the daytona SDK: set COVE_PYTHON or run scripts/test.sh (makes {})",
        venv.display()
    );
    venv
}

/// The SDK's TLS stack (reqwest's platform verifier, built while `isolated_env` has emptied the
/// environment, so `SSL_CERT_FILE` is not seen) trusts only the system store: the CA goes there
/// (`/usr/local/share/ca-certificates`, `update-ca-certificates`) for the test, and out again.
struct TrustedCa(PathBuf);

impl TrustedCa {
    fn install(ca: &std::path::Path) -> Self {
        let pem = std::fs::read(ca).unwrap();
        let name = format!("cove-test-ca-{}.crt", &short_hash(&pem)[..12]);
        let path = PathBuf::from("/usr/local/share/ca-certificates").join(name);
        std::fs::write(&path, pem).unwrap();
        update_ca_certificates();
        Self(path)
    }
}

impl Drop for TrustedCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        update_ca_certificates();
    }
}

fn update_ca_certificates() {
    let status = std::process::Command::new("update-ca-certificates")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "update-ca-certificates failed");
}

fn short_hash(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Runs the SDK's upload with `args` (see `SCRIPT`).
async fn upload(_ca: &str, args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_upload_works_under_its_prefix_only() {
    let dir = tempfile::tempdir().unwrap();
    let scope = S3Scope {
        master_access_key: "cove".into(),
        master_secret_key: "cove-secret".into(),
        platform_secret: SECRET.to_vec(),
        bucket: "cove".into(),
    };
    let tls = cove_local::tls::LocalTls::load(dir.path()).unwrap();
    let (s3, https) = start_s3(&dir.path().join("s3"), scope, Some(&tls))
        .await
        .unwrap();
    let https = https.unwrap();
    assert!(https.url.starts_with("https://127.0.0.1:"), "{}", https.url);
    let c = cove_scoped_creds::mint_s3(SECRET, ORG_A, cove_scoped_creds::now_unix() + 600).unwrap();

    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("small.txt"), "hello").unwrap();
    // Over the 5 MiB part size: a multipart upload.
    std::fs::write(ctx.join("big.bin"), vec![42u8; 6 << 20]).unwrap();
    let ctx_path = ctx.to_string_lossy().into_owned();
    let ca = tls.ca_cert.to_string_lossy().into_owned();
    let _trusted = TrustedCa::install(&tls.ca_cert);
    let base = [
        https.url.as_str(),
        &c.access_key,
        &c.secret,
        &c.session_token,
        "cove",
    ];
    let ok = upload(&ca, &[&base[..], &[ORG_A, &ctx_path]].concat()).await;
    let hash = ok["hash"]
        .as_str()
        .unwrap_or_else(|| panic!("{ok}"))
        .to_owned();
    // Uploading the same context again is a HEAD hit.
    assert_eq!(
        upload(&ca, &[&base[..], &[ORG_A, &ctx_path]].concat()).await["hash"],
        hash
    );
    let refused = upload(&ca, &[&base[..], &[ORG_B, &ctx_path]].concat()).await;
    assert!(refused["error"].is_string(), "{refused}");

    let master = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&s3.url)
            .force_path_style(true)
            .credentials_provider(Credentials::new("cove", "cove-secret", None, None, "t"))
            .http_client(cove_store::https_client())
            .build(),
    );
    let listed = master
        .list_objects_v2()
        .bucket("cove")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec![format!("{ORG_A}/{hash}/context.tar").as_str()]);
    let size = listed.contents()[0].size().unwrap();
    assert!(size > 6 << 20, "{size}");
    // Plain HTTP is what obstore refuses: why `storageUrl` is the HTTPS listener.
    let http = [
        s3.url.as_str(),
        &c.access_key,
        &c.secret,
        &c.session_token,
        "cove",
    ];
    let refused = upload(&ca, &[&http[..], &[ORG_A, &ctx_path]].concat()).await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("BadScheme")),
        "{refused}"
    );
    https.stop().await;
    s3.stop().await;
}
