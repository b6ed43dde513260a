//! Snapshot images on a runner: pull (with registry credentials), build from a Dockerfile and
//! S3 build contexts, push to the internal registry, logs, removal.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `PUT /v1/snapshots/{key}?wait=SECONDS` | [`SnapshotSpec`] | 200 [`SnapshotStatus`] (`ready`/`error`) or 202 [`SnapshotStatus`] (in progress) |
//! | `GET /v1/snapshots/{key}` | – | 200 [`SnapshotStatus`]; 404 `SNAPSHOT_NOT_FOUND` when the agent has no such job or image |
//! | `GET /v1/snapshots/{key}/logs?follow=BOOL` | – | 200 `text/plain` log of the pull/build; with `follow=true` streamed until the job ends |
//! | `DELETE /v1/snapshots/{key}` | – | 200 [`SnapshotRemoval`]: `removed: true` once the runner holds nothing under `key` (also for an unknown key); `false` while a container uses the image (nothing removed) |
//!
//! `key` is the control plane's snapshot id. `PUT` is idempotent: the same key and spec while
//! the job runs joins it; when the image of the spec (the build's `ref`) is already on the runner
//! the answer is `ready` at once (with `push`, the agent still pushes it: cheap when the
//! registry has the layers). `wait` is bounded like the sandbox `PUT` ([`crate::PutQuery`];
//! [`crate::client::Client::put_snapshot`] takes `Option<u32>`, `None` = the agent's default).
//!
//! - Credentials (`auth`) are not part of the spec's identity: a `PUT` with rotated credentials
//!   joins the running job.
//! - A finished `error` job stays (the same `PUT` answers it again) until `DELETE`; a `ready` job
//!   whose image is gone runs again; another spec under a running key is 409 `SNAPSHOT_BUSY`.
//! - A job running when the agent stops is lost (`GET` answers 404): `PUT` it again. `ready`
//!   jobs survive restarts.
//! - Tenants: an internal ref `[registry/]cove-{org}/...` ([`internal_org_of`]) is only pulled or
//!   built for `org`, `push.project` must be [`project_of`]`(orgId)`, and a sandbox spec naming
//!   another organization's internal ref is refused (403).
//! - With `--runtime fake` the jobs are simulated (fault [`crate::fake::FakeOp::Snapshot`] delays
//!   or hangs them).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Error code of `GET /v1/snapshots/{key}` for a key the agent does not know.
pub const SNAPSHOT_NOT_FOUND: &str = "SNAPSHOT_NOT_FOUND";

/// Tag of every image in the internal registry.
pub const INTERNAL_TAG: &str = "daytona";

/// The project (repository namespace) of an organization in the internal registry.
pub fn project_of(org: &str) -> String {
    format!("cove-{org}")
}

/// The ref of a declarative build: `{registry}/cove-{org}/daytona-{H}:daytona` with
/// `H = hex(sha256(dockerfile + concat(sorted(context_hashes))))`. The same build in the same
/// organization has the same ref, so it is built once.
pub fn build_ref(registry: &str, org: &str, dockerfile: &str, context_hashes: &[String]) -> String {
    let mut sorted: Vec<&str> = context_hashes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    h.update(dockerfile.as_bytes());
    for c in sorted {
        h.update(c.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    internal_ref(registry, org, &digest)
}

/// The ref of a pulled image once copied to the internal registry:
/// `{registry}/cove-{org}/daytona-{hex(sha256(image id))}:daytona`.
pub fn pulled_ref(registry: &str, org: &str, image_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(image_id.as_bytes()));
    internal_ref(registry, org, &digest)
}

fn internal_ref(registry: &str, org: &str, digest: &str) -> String {
    let project = project_of(org);
    if registry.is_empty() {
        format!("{project}/daytona-{digest}:{INTERNAL_TAG}")
    } else {
        format!("{registry}/{project}/daytona-{digest}:{INTERNAL_TAG}")
    }
}

/// The organization whose internal project `image` lives in (`[host[:port]/]cove-{org}/...`),
/// if it is such a ref.
pub fn internal_org_of(image: &str) -> Option<&str> {
    image
        .split('/')
        .rev()
        .nth(1)
        .and_then(|p| p.strip_prefix("cove-"))
        .filter(|org| !org.is_empty() && *org != "backup")
}

/// Body of `PUT /v1/snapshots/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSpec {
    pub org_id: String,
    pub source: SnapshotSource,
    /// Where to push the result (initial runner): the internal registry; `None` keeps it local
    /// only (propagation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushTarget>,
}

/// What a snapshot job makes its image from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SnapshotSource {
    /// Pull `image` (with `auth` when the org has a registry for its host), then (with `push`)
    /// tag and push it.
    #[serde(rename_all = "camelCase")]
    Pull {
        image: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<RegistryAuth>,
    },
    /// Build from the Dockerfile and the S3 contexts `{orgId}/{hash}/context.tar`, tagged `ref`
    /// (= [`build_ref`]).
    #[serde(rename_all = "camelCase")]
    Build {
        dockerfile: String,
        #[serde(default)]
        context_hashes: Vec<String>,
        r#ref: String,
    },
}

/// A registry project to push to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PushTarget {
    /// `host:port`, no scheme.
    pub registry: String,
    /// The repository namespace (`cove-{orgId}`).
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
}

/// Credentials of a registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// `host[:port]` the credentials are for.
    pub server: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("server", &self.server)
            .finish()
    }
}

/// State of a snapshot job (lowercase on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SnapshotJobState {
    Pending,
    Pulling,
    Building,
    Pushing,
    Ready,
    Error,
}

impl SnapshotJobState {
    /// `ready` or `error`: the job is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Error)
    }
}

/// What the agent reports about a snapshot job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub key: String,
    pub state: SnapshotJobState,
    /// The image ref sandboxes use: the internal ref once pushed, else the local tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Build/pull failure, verbatim from Docker where possible (e.g. the failing RUN's exit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// `true` for a Dockerfile build that failed (control plane `build_failed`), `false` for
    /// pull/push errors.
    #[serde(default)]
    pub build_failed: bool,
}

impl SnapshotStatus {
    /// A status in `state` with nothing else known yet.
    pub fn new(key: impl Into<String>, state: SnapshotJobState) -> Self {
        Self {
            key: key.into(),
            state,
            r#ref: None,
            size_bytes: None,
            entrypoint: None,
            cmd: None,
            error_reason: None,
            build_failed: false,
        }
    }
}

/// Answer of `DELETE /v1/snapshots/{key}`: `removed` is whether the runner no longer holds
/// the snapshot (`false`: a container still uses its image; ask again later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRemoval {
    pub removed: bool,
}

/// Query of `GET /v1/snapshots/{key}/logs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    /// Stream until the job ends (default false: the log so far).
    #[serde(default)]
    pub follow: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> RegistryAuth {
        RegistryAuth {
            username: "u".into(),
            password: "hunter2".into(),
            server: "registry.example.com:5000".into(),
        }
    }

    #[test]
    fn build_ref_sorts_context_hashes_and_is_stable() {
        let a = build_ref(
            "127.0.0.1:5000",
            "org1",
            "FROM x\n",
            &["b".into(), "a".into()],
        );
        let b = build_ref(
            "127.0.0.1:5000",
            "org1",
            "FROM x\n",
            &["a".into(), "b".into()],
        );
        assert_eq!(a, b);
        let digest = hex::encode(Sha256::digest(b"FROM x\nab"));
        assert_eq!(
            a,
            format!("127.0.0.1:5000/cove-org1/daytona-{digest}:daytona")
        );
        assert_ne!(
            a,
            build_ref(
                "127.0.0.1:5000",
                "org2",
                "FROM x\n",
                &["a".into(), "b".into()]
            )
        );
        assert_ne!(
            a,
            build_ref(
                "127.0.0.1:5000",
                "org1",
                "FROM y\n",
                &["a".into(), "b".into()]
            )
        );
        assert_eq!(internal_org_of(&a), Some("org1"));
        assert_eq!(internal_org_of("cove-sandbox-base:latest"), None);
        assert_eq!(internal_org_of("docker.io/library/alpine:3"), None);
        assert_eq!(internal_org_of("cove-backup/abc:1"), None);
        let p = pulled_ref("r:1", "o", "sha256:00");
        let digest = hex::encode(Sha256::digest(b"sha256:00"));
        assert_eq!(p, format!("r:1/cove-o/daytona-{digest}:daytona"));
    }

    #[test]
    fn spec_wire_shape_round_trips() {
        let spec = SnapshotSpec {
            org_id: "o".into(),
            source: SnapshotSource::Pull {
                image: "alpine:3".into(),
                auth: Some(auth()),
            },
            push: Some(PushTarget {
                registry: "127.0.0.1:5000".into(),
                project: "cove-o".into(),
                auth: None,
            }),
        };
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["orgId"], "o");
        assert_eq!(v["source"]["kind"], "pull");
        assert_eq!(v["source"]["auth"]["server"], "registry.example.com:5000");
        assert_eq!(v["push"]["project"], "cove-o");
        assert!(v["push"].get("auth").is_none());
        let back: SnapshotSpec = serde_json::from_value(v).expect("parse");
        assert_eq!(back, spec);
        let build: SnapshotSpec = serde_json::from_str(
            r#"{"orgId":"o","source":{"kind":"build","dockerfile":"FROM x","contextHashes":["h"],"ref":"r/cove-o/daytona-1:daytona"}}"#,
        )
        .expect("build");
        assert_eq!(
            build.source,
            SnapshotSource::Build {
                dockerfile: "FROM x".into(),
                context_hashes: vec!["h".into()],
                r#ref: "r/cove-o/daytona-1:daytona".into(),
            }
        );
        assert_eq!(build.push, None);
    }

    #[test]
    fn status_wire_shape_round_trips_and_passwords_stay_out_of_debug() {
        let mut st = SnapshotStatus::new("k", SnapshotJobState::Error);
        st.error_reason =
            Some("The command '/bin/sh -c exit 3' returned a non-zero code: 3".into());
        st.build_failed = true;
        let v = serde_json::to_value(&st).expect("json");
        assert_eq!(v["state"], "error");
        assert_eq!(v["buildFailed"], true);
        assert!(v.get("ref").is_none());
        assert_eq!(
            serde_json::from_value::<SnapshotStatus>(v).expect("parse"),
            st
        );
        let ready: SnapshotStatus = serde_json::from_str(
            r#"{"key":"k","state":"ready","ref":"x:1","sizeBytes":5,"entrypoint":["/bin/sh"],"cmd":null}"#,
        )
        .expect("ready");
        assert_eq!(ready.r#ref.as_deref(), Some("x:1"));
        assert!(!ready.build_failed && ready.state.is_final());
        assert!(!SnapshotJobState::Pushing.is_final());
        assert!(!format!("{:?}", auth()).contains("hunter2"));
        let r: SnapshotRemoval = serde_json::from_str(r#"{"removed":true}"#).expect("removal");
        assert!(r.removed);
    }
}
