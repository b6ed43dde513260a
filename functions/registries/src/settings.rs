//! The variables this function reads beyond the store and JWT ones.

use cove_edge::config::Settings;

/// Lifetime of push credentials when `scoped_credentials_ttl_seconds` is unset: one hour.
pub const DEFAULT_TTL_SECS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `scoped_credentials_secret`: signs push credentials and seals registry passwords.
    pub secret: String,
    /// `scoped_credentials_ttl_seconds` (default 3600; tests shorten it).
    pub ttl_secs: u64,
    /// `internal_registry` (`host:port`); `None`: no internal registry.
    pub internal_registry: Option<String>,
    /// `s3_bucket`.
    pub s3_bucket: String,
    /// `s3_public_endpoint`, else `s3_endpoint`: the `storageUrl` handed to SDKs.
    pub storage_url: String,
    /// `aws_region`.
    pub region: String,
    /// `object_storage_sts_role_arn`: mint with STS instead of signing locally.
    pub sts_role_arn: Option<String>,
    /// `aws_access_key_id` / `aws_secret_access_key`: what STS requests are signed with.
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
}

impl Settings for RegistrySettings {
    const VARIABLES: &'static [&'static str] = &[
        "scoped_credentials_secret",
        "scoped_credentials_ttl_seconds",
        "internal_registry",
        "s3_bucket",
        "s3_endpoint",
        "s3_public_endpoint",
        "aws_region",
        "object_storage_sts_role_arn",
        "aws_access_key_id",
        "aws_secret_access_key",
    ];

    /// Empty values count as unset.
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let opt = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            secret: opt("scoped_credentials_secret").unwrap_or_default(),
            ttl_secs: opt("scoped_credentials_ttl_seconds")
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .unwrap_or(DEFAULT_TTL_SECS),
            internal_registry: opt("internal_registry"),
            s3_bucket: opt("s3_bucket").unwrap_or_else(|| "cove".to_owned()),
            storage_url: opt("s3_public_endpoint")
                .or_else(|| opt("s3_endpoint"))
                .unwrap_or_default(),
            region: opt("aws_region").unwrap_or_else(|| "us-east-1".to_owned()),
            sts_role_arn: opt("object_storage_sts_role_arn"),
            aws_access_key_id: opt("aws_access_key_id").unwrap_or_default(),
            aws_secret_access_key: opt("aws_secret_access_key").unwrap_or_default(),
        }
    }
}
