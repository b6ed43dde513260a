//! Shared plumbing of Cove's Spin components.
//!
//! A function crate is a library with one entry point, `handle(&Env, Request) -> Response`, that
//! runs the same natively (tests, benchmarks) and inside a Spin component (see [`spin`]). This
//! crate gives it: the request/response types and JSON helpers ([`web`]), the configuration read
//! from Spin variables ([`config`]), authentication ([`auth`]) and the one error mapping.

pub mod auth;
pub mod authz;
pub mod config;
pub mod outbound;
#[cfg(feature = "routes")]
pub mod responses;
#[cfg(feature = "routes")]
pub mod router;
pub mod runner_auth;
pub mod runner_client;
pub mod store_error;
pub mod web;

#[cfg(target_arch = "wasm32")]
pub mod spin;

pub use auth::{AuthContext, Credential, TokenEmail};
pub use authz::{Action, authorize};
pub use config::{EdgeConfig, Env};
pub use cove_api_types::ApiError;
pub use web::{Request, Response};

/// What the exported macros need from this crate's dependencies.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "routes")]
    pub use pastey;
}

/// Initializes `tracing` to stderr once per process/instance. The level comes from `RUST_LOG`
/// (a plain level such as `debug`; default `info`): parsing a full `EnvFilter` costs a few hundred
/// microseconds in a fresh instance, on every request.
pub fn init_tracing() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// A function's Spin entry point, in one line:
///
/// * `cove_edge::component!(crate::handle);` for `async fn handle(&Env, Request) -> Response`;
/// * `cove_edge::component!(crate::handle, settings = SandboxSettings);` for
///   `async fn handle(&Env, &SandboxSettings, Request) -> Response` (settings read once per
///   instance from their Spin variables).
///
/// The module it adds exists only when building for `wasm32`.
#[macro_export]
macro_rules! component {
    ($handler:path) => {
        #[cfg(target_arch = "wasm32")]
        mod __cove_component {
            #[spin_sdk::http_service]
            async fn handle(req: spin_sdk::http::Request) -> impl spin_sdk::http::IntoResponse {
                $crate::spin::serve(req, |env, req| async move { $handler(&env, req).await }).await
            }
        }
    };
    ($handler:path, settings = $settings:ty) => {
        #[cfg(target_arch = "wasm32")]
        mod __cove_component {
            static SETTINGS: std::sync::OnceLock<$settings> = std::sync::OnceLock::new();

            #[spin_sdk::http_service]
            async fn handle(req: spin_sdk::http::Request) -> impl spin_sdk::http::IntoResponse {
                let settings = match SETTINGS.get() {
                    Some(s) => s.clone(),
                    None => {
                        let s = $crate::spin::load_settings::<$settings>().await;
                        SETTINGS.get_or_init(|| s).clone()
                    }
                };
                $crate::spin::serve(req, |env, req| async move {
                    $handler(&env, &settings, req).await
                })
                .await
            }
        }
    };
}
