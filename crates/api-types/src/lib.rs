//! The only definition of Cove's wire types: Daytona DTOs, typed IDs and the error envelope.
//!
//! No I/O here; this crate builds for `wasm32-wasip2` and the host.

/// `utoipa::ToSchema` for an enum whose wire strings come from `as_str` over `ALL` (utoipa's
/// derive does not see `serde(rename)` values passed through `macro_rules`): a string schema
/// with exactly the wire values.
macro_rules! string_enum_schema {
    ($name:ident) => {
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

pub mod api_keys;
pub mod error;
pub mod ids;
pub mod orgs;
pub mod permissions;
pub mod preview;
pub mod registries;
pub mod runner;
pub mod sandbox;
pub mod snapshots;
pub mod telemetry;
pub mod time;
pub mod toolbox;
pub mod volumes;

pub use error::{ApiError, ErrorEnvelope};
