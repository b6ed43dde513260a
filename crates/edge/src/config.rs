//! Component configuration, read from Spin variables (natively: from any lookup, e.g. a map).

use cove_store::{Store, StoreConfig};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

/// Every Spin variable an edge component reads. Each must be listed in the component's
/// `[component.<id>.variables]` in `spin.toml`.
pub const VARIABLES: &[&str] = &[
    "dynamodb_endpoint",
    "dynamodb_table",
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "jwt_hs256_secret",
    "jwt_rs256_public_key",
    "jwt_jwks",
    "jwt_issuer",
    "jwt_audience",
    "default_snapshot",
    "toolbox_proxy_url",
    "proxy_domain",
    "lifecycle_minute_secs",
];

/// Why the configuration is unusable. Reported as a 500 (the operator's problem, not the caller's).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("variable {0} is not set")]
    Missing(&'static str),
    #[error("variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Parsed configuration of an edge component.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub store: StoreConfig,
    pub jwt: JwtConfig,
    /// `lifecycle_minute_secs` (test-only time scale): how many seconds one minute of the
    /// sandboxes' lifecycle intervals lasts; `None`: 60 (see `Store::with_lifecycle_minute`).
    pub lifecycle_minute_secs: Option<u32>,
}

/// A function's own settings beyond [`EdgeConfig`], read from Spin variables once per instance
/// (see [`component!`](crate::component)).
pub trait Settings: Clone + Sized + 'static {
    /// The variables [`Settings::from_lookup`] reads; each must be granted in `spin.toml`.
    const VARIABLES: &'static [&'static str];
    /// Builds the settings from a variable lookup.
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self;
}

/// What the sandboxes function needs besides the store: every value optional, with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    /// Image reference used when a create names no snapshot (`default_snapshot`).
    pub default_snapshot: String,
    /// Base URL of the toolbox proxy (`toolbox_proxy_url`); `None`: `http://<Host header>/toolbox`.
    pub toolbox_proxy_url: Option<String>,
    /// Domain of preview URLs (`proxy_domain`); `None`: the request's Host header.
    pub proxy_domain: Option<String>,
    /// The internal registry's account for runners (`internal_registry`,
    /// `internal_registry_username`, `internal_registry_password`; all three set, else `None`):
    /// sent with the spec of a sandbox whose image is in the internal registry, so a runner
    /// that lacks the image can pull it.
    pub internal_registry_auth: Option<cove_runner_api::RegistryAuth>,
    /// The internal registry's `host:port` (`internal_registry`, scheme and trailing `/`
    /// dropped; `None`: none): archives and backups are pushed there.
    pub internal_registry: Option<String>,
}

impl SandboxSettings {
    pub const DEFAULT_SNAPSHOT: &'static str = "cove-sandbox-base:latest";

    /// The pull credentials for `image`: the internal registry's account when the image is in
    /// it (`<internal_registry>/...`), else none.
    pub fn image_auth(&self, image: &str) -> Option<cove_runner_api::RegistryAuth> {
        self.internal_registry_auth
            .as_ref()
            .filter(|a| {
                image
                    .strip_prefix(a.server.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .cloned()
    }
}

impl Settings for SandboxSettings {
    const VARIABLES: &'static [&'static str] = &[
        "default_snapshot",
        "toolbox_proxy_url",
        "proxy_domain",
        "internal_registry",
        "internal_registry_username",
        "internal_registry_password",
    ];

    /// Builds the settings from a variable lookup; empty values count as unset.
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let opt = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            default_snapshot: opt("default_snapshot")
                .unwrap_or_else(|| Self::DEFAULT_SNAPSHOT.to_owned()),
            toolbox_proxy_url: opt("toolbox_proxy_url").map(|u| u.trim_end_matches('/').to_owned()),
            proxy_domain: opt("proxy_domain"),
            internal_registry: opt("internal_registry").map(|h| {
                h.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_owned()
            }),
            internal_registry_auth: match (
                opt("internal_registry"),
                opt("internal_registry_username"),
                opt("internal_registry_password"),
            ) {
                (Some(server), Some(username), Some(password)) => {
                    Some(cove_runner_api::RegistryAuth {
                        username,
                        password,
                        server,
                    })
                }
                _ => None,
            },
        }
    }
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}

/// How JWTs are verified. With nothing configured, JWTs are refused (401).
#[derive(Clone, Default)]
pub struct JwtConfig {
    /// HS256 shared secret (local use and tests).
    pub hs256_secret: Option<String>,
    /// RS256 keys: a PEM public key and/or a JWKS document; `kid` picks from the JWKS.
    pub rs256_keys: Vec<(Option<String>, DecodingKey)>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hs256", &self.hs256_secret.is_some())
            .field("rs256_keys", &self.rs256_keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl EdgeConfig {
    /// Builds the config from a variable lookup; empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let opt = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let req = |name: &'static str| opt(name).ok_or(ConfigError::Missing(name));
        let store = StoreConfig {
            endpoint: req("dynamodb_endpoint")?,
            region: opt("aws_region").unwrap_or_else(|| "us-east-1".into()),
            table: opt("dynamodb_table").unwrap_or_else(|| "cove".into()),
            access_key_id: req("aws_access_key_id")?,
            secret_access_key: req("aws_secret_access_key")?,
        };
        let mut rs256_keys = Vec::new();
        if let Some(pem) = opt("jwt_rs256_public_key") {
            let key =
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| ConfigError::Invalid {
                    name: "jwt_rs256_public_key",
                    reason: e.to_string(),
                })?;
            rs256_keys.push((None, key));
        }
        if let Some(jwks) = opt("jwt_jwks") {
            let set: JwkSet = serde_json::from_str(&jwks).map_err(|e| ConfigError::Invalid {
                name: "jwt_jwks",
                reason: e.to_string(),
            })?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| ConfigError::Invalid {
                    name: "jwt_jwks",
                    reason: e.to_string(),
                })?;
                rs256_keys.push((jwk.common.key_id.clone(), key));
            }
        }
        let jwt = JwtConfig {
            hs256_secret: opt("jwt_hs256_secret"),
            rs256_keys,
            issuer: opt("jwt_issuer"),
            audience: opt("jwt_audience"),
        };
        let lifecycle_minute_secs = opt("lifecycle_minute_secs")
            .map(|v| {
                v.trim().parse::<u32>().map_err(|e| ConfigError::Invalid {
                    name: "lifecycle_minute_secs",
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(Self {
            store,
            jwt,
            lifecycle_minute_secs,
        })
    }
}

/// What a handler runs against: the store and the verified config. Built once per instance.
#[derive(Clone, Debug)]
pub struct Env {
    pub store: Store,
    pub jwt: JwtConfig,
}

impl Env {
    pub fn new(config: EdgeConfig) -> Self {
        Self {
            store: Store::new(&config.store).with_lifecycle_minute(time::Duration::seconds(
                i64::from(config.lifecycle_minute_secs.unwrap_or(60)),
            )),
            jwt: config.jwt,
        }
    }
}

#[cfg(test)]
mod sandbox_settings_tests {
    use super::*;

    #[test]
    fn internal_images_get_the_internal_account() {
        let vars = [
            ("internal_registry", "127.0.0.1:5000"),
            ("internal_registry_username", "cove"),
            ("internal_registry_password", "pw"),
        ];
        let s = SandboxSettings::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        });
        let auth = s
            .image_auth("127.0.0.1:5000/cove-x/daytona-1:daytona")
            .expect("an internal image");
        assert_eq!(
            (auth.username.as_str(), auth.server.as_str()),
            ("cove", "127.0.0.1:5000")
        );
        assert!(s.image_auth("127.0.0.1:50001/x:1").is_none());
        assert!(s.image_auth("cove-sandbox-base:latest").is_none());
        assert!(SandboxSettings::default().internal_registry_auth.is_none());
        assert!(!format!("{s:?}").contains("pw"), "the password never shows");
    }
}
