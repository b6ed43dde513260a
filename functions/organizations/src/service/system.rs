//! What the platform says about itself: `/config` (public) and `/health/ready`.

use std::collections::BTreeMap;

use cove_api_types::orgs::{DaytonaConfiguration, OidcConfig};
use cove_edge::Env;

/// `GET /health/ready`: whether the table answers (the error, if it does not).
pub async fn ready(env: &Env) -> Result<(), String> {
    env.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: the table does not answer");
        "The database is not reachable".to_owned()
    })
}

pub fn config(env: &Env) -> DaytonaConfiguration {
    DaytonaConfiguration {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        oidc: OidcConfig {
            issuer: env.jwt.issuer.clone().unwrap_or_default(),
            client_id: "cove".into(),
            audience: env.jwt.audience.clone().unwrap_or_default(),
            provider: "cove".into(),
        },
        linked_accounts_enabled: true,
        announcements: BTreeMap::new(),
        proxy_template_url: "http://{{PORT}}-{{sandboxId}}.proxy.localhost".into(),
        proxy_toolbox_url: "http://proxy.localhost/toolbox".into(),
        default_snapshot: "daytonaio/sandbox:latest".into(),
        dashboard_url: "http://localhost/dashboard".into(),
        max_auto_archive_interval: 43200,
        maintanance_mode: false,
        environment: "local".into(),
    }
}
