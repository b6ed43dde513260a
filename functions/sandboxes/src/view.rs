//! Stored records → wire DTOs, and the URLs handed to the SDK.

use cove_api_types::sandbox::{Sandbox, SandboxClass, SandboxVolume};
use cove_edge::config::SandboxSettings;
use cove_edge::web::Request;
use cove_store::sandboxes::SandboxRecord;

/// Where the request was addressed (`Host`, else the URI authority, else `localhost`).
pub fn request_host(req: &Request) -> String {
    req.headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The toolbox proxy base URL: `toolbox_proxy_url`, else `http://<host>/toolbox`.
pub fn toolbox_proxy_url(settings: &SandboxSettings, host: &str) -> String {
    settings
        .toolbox_proxy_url
        .clone()
        .unwrap_or_else(|| format!("http://{host}/toolbox"))
}

/// `http://<port>-<id>.<proxy domain or host>` (CONTRACT §9).
pub fn preview_url(settings: &SandboxSettings, host: &str, id: &str, port: u16) -> String {
    let domain = settings.proxy_domain.as_deref().unwrap_or(host);
    match domain.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{port}-{id}.{rest}"),
        None => format!("http://{port}-{id}.{domain}"),
    }
}

/// The wire view of a stored sandbox.
pub fn sandbox(rec: &SandboxRecord, toolbox_proxy_url: &str) -> Sandbox {
    Sandbox {
        id: rec.id.to_string(),
        organization_id: rec.org_id.to_string(),
        name: rec.name.clone(),
        snapshot: Some(rec.snapshot.clone()),
        user: rec.user.clone(),
        env: rec.env.clone(),
        labels: rec.labels.clone(),
        public: rec.public,
        network_block_all: rec.network_block_all,
        kvm: false,
        network_allow_list: rec.network_allow_list.clone(),
        domain_allow_list: rec.domain_allow_list.clone(),
        network_deny_list: rec.network_deny_list.clone(),
        domain_deny_list: rec.domain_deny_list.clone(),
        outbound_proxy_url: None,
        otel_endpoint_override: None,
        target: rec.target.clone(),
        cpu: rec.cpu,
        gpu: rec.gpu,
        memory: rec.memory,
        disk: rec.disk,
        spot: false,
        spot_evicted_at: None,
        queue_timed_out_at: rec.queue_timed_out_at.clone(),
        gpu_type: None,
        state: rec.state,
        desired_state: rec.desired_state,
        error_reason: rec.error_reason.clone(),
        recoverable: rec.recoverable,
        warm_pool_id: None,
        backup_state: rec.backup_state,
        backup_created_at: rec.backup_created_at.clone(),
        auto_stop_interval: rec.auto_stop_interval,
        auto_pause_interval: rec.auto_pause_interval,
        auto_archive_interval: rec.auto_archive_interval,
        auto_delete_interval: rec.auto_delete_interval,
        auto_destroy_at: rec.auto_destroy_at.clone(),
        queue_timeout: rec.queue_timeout,
        volumes: rec
            .volumes
            .iter()
            .map(|v| SandboxVolume {
                volume_id: v.volume_id.to_string(),
                mount_path: v.mount_path.clone(),
                subpath: v.subpath.clone(),
            })
            .collect(),
        build_info: None,
        created_at: rec.created_at.clone(),
        updated_at: rec.updated_at.clone(),
        last_activity_at: rec.last_activity_at.clone(),
        busy: rec.busy,
        last_busy_at: rec.last_busy_at.clone(),
        sandbox_class: SandboxClass::Container,
        daemon_version: rec.daemon_version.clone(),
        runner_id: rec.runner_id.as_ref().map(ToString::to_string),
        linked_sandbox_id: None,
        toolbox_proxy_url: toolbox_proxy_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_settings_then_host() {
        let mut s = SandboxSettings::default();
        assert_eq!(
            toolbox_proxy_url(&s, "localhost:3000"),
            "http://localhost:3000/toolbox"
        );
        assert_eq!(
            preview_url(&s, "localhost:3000", "abc", 8080),
            "http://8080-abc.localhost:3000"
        );
        s.toolbox_proxy_url = Some("https://proxy.example.com/toolbox".into());
        s.proxy_domain = Some("https://preview.example.com".into());
        assert_eq!(
            toolbox_proxy_url(&s, "x"),
            "https://proxy.example.com/toolbox"
        );
        assert_eq!(
            preview_url(&s, "x", "abc", 1),
            "https://1-abc.preview.example.com"
        );
    }

    #[test]
    fn every_required_field_is_sent() {
        let rec = SandboxRecord::new(
            cove_api_types::ids::SandboxId::new_random(),
            cove_api_types::ids::OrganizationId::new_random(),
            "n",
            "img:1",
            "2026-01-01T00:00:00.000Z",
        );
        let v = serde_json::to_value(sandbox(&rec, "http://h/toolbox")).unwrap();
        for k in [
            "id",
            "organizationId",
            "name",
            "user",
            "env",
            "labels",
            "public",
            "networkBlockAll",
            "kvm",
            "target",
            "cpu",
            "gpu",
            "memory",
            "disk",
            "toolboxProxyUrl",
        ] {
            assert!(!v[k].is_null(), "{k} missing in {v}");
        }
        assert_eq!(v["cpu"], 1);
        assert_eq!(v["state"], "creating");
        assert_eq!(v["backupState"], "None");
    }
}
