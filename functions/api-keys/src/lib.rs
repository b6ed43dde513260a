//! The `api-keys` edge function: `/api/api-keys` (CONTRACT §7).
//!
//! Create/list/get/delete take a JWT, or an API key holding `manage:api_keys`; `GET /current`
//! takes an API key. Every lookup is scoped to the caller's organization.

mod routes;
pub mod service;

pub use routes::{ApiDoc, handle};

#[cfg(target_arch = "wasm32")]
mod component {
    use spin_sdk::http::{IntoResponse, Request};
    use spin_sdk::http_service;

    #[http_service]
    async fn handle(req: Request) -> impl IntoResponse {
        cove_edge::spin::serve(
            req,
            |env, req| async move { crate::handle(&env, req).await },
        )
        .await
    }
}
