//! `cove up`'s internal registry: Debian's `docker-registry` as a child process behind the auth
//! gate. Push-access credentials (minted as `registry-push-access` mints them) push and pull in
//! their organization's project only; another project is refused with 403 (`denied`); no or
//! expired credentials get 401 with `WWW-Authenticate: Basic realm="cove"`; the internal account
//! reaches everything; the registry process ends with cove.
#![allow(clippy::unwrap_used)]

use crate::common;

use base64::Engine as _;
use common::{Cove, Start, manifest};
use cove_testkit::procfs;
use cove_testkit::registry::{pull_image, push_image, remove_images, tiny_image};

const SECRET: &str = "registry-test-secret";
const INTERNAL_USER: &str = "cove-internal";
const INTERNAL_PW: &str = "internal-test-password";
const ORG_A: &str = "5b0c9d0e-1111-4c4e-9d7e-aaaaaaaaaaaa";
const ORG_B: &str = "5b0c9d0e-1111-4c4e-9d7e-bbbbbbbbbbbb";

fn start(dir: &std::path::Path, args: &[&str]) -> Cove {
    let manifest = manifest::app("http://127.0.0.1:9");
    Cove::start(Start {
        manifest: &manifest,
        data_dir: dir,
        args,
        env: &[("SPIN_VARIABLE_SCOPED_CREDENTIALS_SECRET", SECRET)],
    })
}

fn line<'a>(cove: &'a Cove, prefix: &str) -> Option<&'a str> {
    cove.stdout.iter().find_map(|l| l.strip_prefix(prefix))
}

fn basic(user: &str, pass: &str) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {enc}")
}

async fn v2(host: &str, auth: Option<String>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("http://{host}/v2/"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_scopes_push_access_to_the_organizations_project() {
    cove_testkit::image::ensure_docker().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--internal-registry-password", INTERNAL_PW]);
    let host = line(&cove, "COVE_INTERNAL_REGISTRY=").unwrap().to_owned();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    let children = procfs::children_named(cove.pid(), "docker-registry");
    assert_eq!(children.len(), 1, "one docker-registry child: {children:?}");
    let child = children[0];

    let anon = v2(&host, None).await;
    assert_eq!(anon.status(), 401);
    assert_eq!(anon.headers()["www-authenticate"], r#"Basic realm="cove""#);
    assert_eq!(
        v2(&host, Some(basic(INTERNAL_USER, INTERNAL_PW)))
            .await
            .status(),
        200
    );
    assert_eq!(
        v2(&host, Some(basic(INTERNAL_USER, "wrong")))
            .await
            .status(),
        401
    );
    let exp = cove_scoped_creds::now_unix() + 600;
    let a = cove_scoped_creds::mint_registry(SECRET.as_bytes(), ORG_A, exp).unwrap();
    let b = cove_scoped_creds::mint_registry(SECRET.as_bytes(), ORG_B, exp).unwrap();
    let expired = cove_scoped_creds::mint_registry(SECRET.as_bytes(), ORG_A, 1).unwrap();
    assert_eq!(
        v2(&host, Some(basic(&a.username, &a.password)))
            .await
            .status(),
        200
    );
    assert_eq!(
        v2(&host, Some(basic(&expired.username, &expired.password)))
            .await
            .status(),
        401
    );
    let forged = cove_scoped_creds::mint_registry(b"other", ORG_A, exp).unwrap();
    assert_eq!(
        v2(&host, Some(basic(&forged.username, &forged.password)))
            .await
            .status(),
        401
    );

    let local = format!("cove-test-tiny:{}", &ORG_A[..8]);
    tiny_image(&local, "hello from org A").unwrap();
    let a_ref = format!("{host}/cove-{ORG_A}/tiny:1");
    let b_ref = format!("{host}/cove-{ORG_B}/tiny:1");
    let a_auth = Some((a.username.as_str(), a.password.as_str()));
    let b_auth = Some((b.username.as_str(), b.password.as_str()));
    push_image(&local, &a_ref, a_auth).unwrap();
    // A's credentials cannot push into B's project, nor B's read A's image.
    assert!(push_image(&local, &b_ref, a_auth).is_err());
    assert!(pull_image(&a_ref, b_auth).is_err());
    assert!(pull_image(&a_ref, None).is_err());
    // Its own credentials and the internal account pull it.
    pull_image(&a_ref, a_auth).unwrap();
    remove_images(&[&a_ref]);
    pull_image(&a_ref, Some((INTERNAL_USER, INTERNAL_PW))).unwrap();
    remove_images(&[&a_ref, &local]);

    // What a denied request looks like on the wire: 403 DENIED for a valid credential.
    let other = reqwest::Client::new()
        .get(format!("http://{host}/v2/cove-{ORG_B}/tiny/manifests/1"))
        .header("authorization", basic(&a.username, &a.password))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    assert!(other.text().await.unwrap().contains("DENIED"));
    let catalog = reqwest::Client::new()
        .get(format!("http://{host}/v2/_catalog"))
        .header("authorization", basic(INTERNAL_USER, INTERNAL_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), 200);
    let repos = catalog.text().await.unwrap();
    assert!(repos.contains(&format!("cove-{ORG_A}/tiny")), "{repos}");
    assert!(!repos.contains(&format!("cove-{ORG_B}/")), "{repos}");

    assert!(cove.terminate().success());
    assert!(
        !procfs::alive(child),
        "docker-registry {child} outlived cove"
    );
    assert!(std::net::TcpStream::connect(&host).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_internal_password_is_generated_once_per_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &[]);
    let host = line(&cove, "COVE_INTERNAL_REGISTRY=").unwrap().to_owned();
    let path = dir.path().join("data/secrets/internal_registry_password");
    let pw = std::fs::read_to_string(&path).unwrap();
    assert_eq!(pw.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        v2(&host, Some(basic(INTERNAL_USER, &pw))).await.status(),
        200
    );
    assert!(cove.terminate().success());
    let again = start(dir.path(), &[]);
    let host = line(&again, "COVE_INTERNAL_REGISTRY=").unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pw);
    assert_eq!(
        v2(&host, Some(basic(INTERNAL_USER, &pw))).await.status(),
        200
    );
    assert!(again.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_registry_or_none_starts_no_child() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(
        dir.path(),
        &["--internal-registry", "registry.example.com:5000"],
    );
    assert_eq!(
        line(&cove, "COVE_INTERNAL_REGISTRY="),
        Some("registry.example.com:5000")
    );
    assert!(procfs::children_named(cove.pid(), "docker-registry").is_empty());
    assert!(cove.terminate().success());

    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &["--no-internal-registry"]);
    assert_eq!(line(&cove, "COVE_INTERNAL_REGISTRY="), None);
    assert!(procfs::children_named(cove.pid(), "docker-registry").is_empty());
    assert!(cove.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_dies_with_a_killed_cove() {
    let dir = tempfile::tempdir().unwrap();
    let cove = start(dir.path(), &[]);
    let children = procfs::children_named(cove.pid(), "docker-registry");
    assert_eq!(children.len(), 1, "one docker-registry child: {children:?}");
    let child = children[0];
    cove.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while procfs::alive(child) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !procfs::alive(child),
        "docker-registry {child} outlived a SIGKILLed cove"
    );
}
