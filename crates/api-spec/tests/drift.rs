//! Fails when `openapi/control-plane.json` no longer matches the code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn control_plane_document_is_up_to_date() {
    let doc = cove_api_spec::control_plane();
    let json = doc.to_pretty_json().expect("serialize OpenAPI");
    expectorate::assert_contents("../../openapi/control-plane.json", &format!("{json}\n"));
}

#[test]
fn every_api_key_route_is_documented_with_envelope_errors() {
    let doc = cove_api_spec::control_plane();
    let ops = cove_api_spec::operations(&doc);
    for want in [
        ("POST", "/api/api-keys"),
        ("GET", "/api/api-keys"),
        ("GET", "/api/api-keys/current"),
        ("GET", "/api/api-keys/{name}"),
        ("DELETE", "/api/api-keys/{name}"),
        ("DELETE", "/api/api-keys/{userId}/{name}"),
    ] {
        assert!(
            ops.contains(&(want.0.to_owned(), want.1.to_owned())),
            "missing {want:?} in {ops:?}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    assert_eq!(
        v["paths"]["/api/api-keys"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ApiKeyResponse"
    );
    assert!(v["components"]["schemas"]["ErrorEnvelope"].is_object());
}
