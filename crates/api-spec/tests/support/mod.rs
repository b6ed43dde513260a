//! What the tests of this directory share: every function's handlers in-process, routed by
//! path prefix as `cove` routes them.

use cove_edge::config::SandboxSettings;
use cove_edge::{Env, Request, Response};
use cove_testkit::{FAKE_IMAGE, Harness, InProcess};
use registries::RegistrySettings;
use snapshots::SnapshotSettings;

type DispatchFut = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// Every function mounted on `h`'s env; sandboxes default to the simulated runner's image.
pub fn api(h: &Harness) -> InProcess {
    let settings = SandboxSettings {
        default_snapshot: FAKE_IMAGE.to_owned(),
        ..SandboxSettings::default()
    };
    h.api().route("/...", dispatcher(settings))
}

/// The registries function with a signing secret and an internal registry.
pub fn registry_settings() -> RegistrySettings {
    <RegistrySettings as cove_edge::config::Settings>::from_lookup(|k| match k {
        "scoped_credentials_secret" => Some("api-spec-secret".into()),
        "internal_registry" => Some("127.0.0.1:5999".into()),
        "s3_endpoint" => Some("http://127.0.0.1:5998".into()),
        _ => None,
    })
}

/// Object storage for the volumes function (creating a volume only records it; nothing here
/// provisions, so nothing listens there).
pub fn volume_storage() -> volumes::VolumeStorage {
    volumes::VolumeStorage {
        endpoint: "http://127.0.0.1:5998".into(),
        bucket: "cove".into(),
        region: "us-east-1".into(),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
    }
}

fn dispatcher(settings: SandboxSettings) -> impl Fn(Env, Request) -> DispatchFut + Clone {
    let registry = registry_settings();
    move |env, req| {
        let settings = settings.clone();
        let registry = registry.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            if path.starts_with("/api/api-keys") {
                api_keys::handle(&env, req).await
            } else if path.starts_with("/api/runners") {
                runners::handle(&env, req).await
            } else if path.starts_with("/api/sandbox")
                || path.starts_with("/api/workspace")
                || path.starts_with("/api/events")
            {
                sandboxes::handle(&env, &settings, req).await
            } else if path.starts_with("/api/snapshots") || path.starts_with("/api/admin/snapshots")
            {
                let s = SnapshotSettings {
                    default_snapshot: FAKE_IMAGE.to_owned(),
                    internal_registry: "127.0.0.1:5999".to_owned(),
                    jobs: <cove_snapshot_jobs::JobSettings as cove_edge::config::Settings>::from_lookup(
                        |n| (n == "internal_registry").then(|| "127.0.0.1:5999".to_owned()),
                    ),
                };
                snapshots::handle(&env, &s, req).await
            } else if path.starts_with("/api/docker-registry")
                || path.starts_with("/api/object-storage")
            {
                registries::handle(&env, &registry, req).await
            } else if path.starts_with("/api/preview") {
                let proxy = preview::PreviewSettings {
                    proxy_api_key: Some("api-spec-proxy-token".to_owned()),
                };
                preview::handle(&env, &proxy, req).await
            } else if path.starts_with("/api/volumes") {
                volumes::handle(&env, &volume_storage(), req).await
            } else if path.starts_with("/api/toolbox") || path.starts_with("/toolbox") {
                toolbox_fn::handle(&env, req).await
            } else {
                organizations::handle(&env, req).await
            }
        })
    }
}
