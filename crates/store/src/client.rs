use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, IdentityCache, Region};

/// Where the table is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `http://127.0.0.1:8000` for a local emulator, `https://dynamodb.<region>.amazonaws.com` for AWS.
    pub endpoint: String,
    pub region: String,
    pub table: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl StoreConfig {
    /// A config for a local emulator (which accepts any credentials).
    pub fn local(endpoint: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            region: "us-east-1".into(),
            table: table.into(),
            access_key_id: "cove".into(),
            secret_access_key: "cove".into(),
        }
    }
}

pub(crate) fn build(cfg: &StoreConfig) -> aws_sdk_dynamodb::Client {
    // Before the SDK forks its generators (its default idempotency tokens, retry jitter,
    // invocation ids) from the thread-local one. Transactions carry their own tokens (`tx`).
    crate::random::seed_fastrand();
    let creds = Credentials::new(
        &cfg.access_key_id,
        &cfg.secret_access_key,
        None,
        None,
        "cove",
    );
    let builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .endpoint_url(&cfg.endpoint)
        .credentials_provider(creds)
        // Static keys: nothing to refresh, so no cache (whose load timeout arms a sleep).
        .identity_cache(IdentityCache::no_cache());
    #[cfg(target_arch = "wasm32")]
    let builder = builder
        .http_client(crate::spin_http::client())
        .sleep_impl(crate::spin_http::Sleep)
        // `spin_http` hands the SDK fully buffered bodies, so there is no stream to watch; the
        // protection would only arm host timers on every request.
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        );
    #[cfg(not(target_arch = "wasm32"))]
    let builder = builder.http_client(https_client());
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// The AWS SDKs' HTTP(S) client for native code: rustls with the ring provider (hyper, pooled).
#[cfg(not(target_arch = "wasm32"))]
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
