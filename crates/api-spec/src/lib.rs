//! The control plane's OpenAPI document, merged from each function's fragment.
//!
//! The checked-in `openapi/control-plane.json` must equal [`control_plane`]: the test in
//! `tests/drift.rs` fails otherwise. Regenerate with
//! `EXPECTORATE=overwrite cargo test --release -p cove-api-spec`.

use cove_api_types::error::ErrorEnvelope;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi as Doc};

/// The whole control-plane document.
pub fn control_plane() -> Doc {
    let mut doc = api_keys::ApiDoc::openapi();
    doc.merge(organizations::ApiDoc::openapi());
    doc.merge(sandboxes::ApiDoc::openapi());
    doc.merge(runners::ApiDoc::openapi());
    doc.merge(snapshots::ApiDoc::openapi());
    doc.merge(toolbox_fn::ApiDoc::openapi());
    doc.merge(registries::ApiDoc::openapi());
    doc.merge(preview::ApiDoc::openapi());
    doc.merge(volumes::ApiDoc::openapi());
    doc.info = InfoBuilder::new()
        .title("Cove control plane")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Daytona's REST API as served by Cove's edge functions",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    // Every function's standard errors (`cove_edge::responses::Errors`) refer to it by name.
    components.schemas.insert(
        "ErrorEnvelope".to_owned(),
        <ErrorEnvelope as utoipa::PartialSchema>::schema(),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("API key (`dtn_…`) or JWT"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "proxy_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The preview proxy's service token (`proxy_api_key`)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "runner_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A runner's token (runner agents only)"))
                .build(),
        ),
    );
    doc
}

/// Every `(METHOD, path)` of the document, e.g. `("GET", "/api/api-keys/{name}")`.
pub fn operations(doc: &Doc) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (m, op) in ops {
            if op.is_some() {
                out.push((m.to_owned(), path.clone()));
            }
        }
    }
    out
}
