//! Routes and documents agree: every documented operation is routed and every routed one is
//! documented, function by function (both come from one `cove_edge::routes!` list; this test
//! keeps it that way, including the `/api/workspace` aliases).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use utoipa::OpenApi;

fn documented(doc: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
    cove_api_spec::operations(doc).into_iter().collect()
}

fn assert_agree(function: &str, doc: utoipa::openapi::OpenApi, routed: Vec<(String, String)>) {
    let documented = documented(&doc);
    let routed: BTreeSet<(String, String)> = routed.into_iter().collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        unrouted.is_empty() && undocumented.is_empty(),
        "{function}: documented but not routed: {unrouted:?}; routed but not documented: {undocumented:?}"
    );
    assert!(!routed.is_empty(), "{function} routes nothing");
}

#[test]
fn every_function_routes_exactly_what_it_documents() {
    assert_agree(
        "api-keys",
        api_keys::ApiDoc::openapi(),
        api_keys::router().operations(),
    );
    assert_agree(
        "organizations",
        organizations::ApiDoc::openapi(),
        organizations::router().operations(),
    );
    assert_agree(
        "sandboxes",
        sandboxes::ApiDoc::openapi(),
        sandboxes::router().operations(),
    );
    assert_agree(
        "snapshots",
        snapshots::ApiDoc::openapi(),
        snapshots::router().operations(),
    );
    assert_agree(
        "runners",
        runners::ApiDoc::openapi(),
        runners::router().operations(),
    );
    assert_agree(
        "registries",
        registries::ApiDoc::openapi(),
        registries::router().operations(),
    );
    assert_agree(
        "preview",
        preview::ApiDoc::openapi(),
        preview::router().operations(),
    );
}

#[test]
fn every_operation_documents_the_error_envelope() {
    let doc = cove_api_spec::control_plane();
    let v: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    for (path, item) in v["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op.get("security").is_some();
            let responses = op["responses"].as_object().unwrap();
            let toolbox = path.starts_with("/toolbox") || path.starts_with("/api/toolbox");
            for (status, r) in responses {
                if !status.starts_with('4') {
                    continue;
                }
                let schema = &r["content"]["application/json"]["schema"];
                if toolbox {
                    // The proxy answers its own refusals in Daytona's envelope and passes the
                    // daemon's errors (its own envelope) through.
                    assert_eq!(
                        schema["anyOf"][0]["$ref"], "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}"
                    );
                    assert_eq!(
                        schema["anyOf"][1]["$ref"], "#/components/schemas/DaemonErrorResponse",
                        "{method} {path} {status}"
                    );
                } else {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}"
                    );
                }
            }
            if secured && !toolbox {
                for status in ["400", "401", "403", "404"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
    }
}
