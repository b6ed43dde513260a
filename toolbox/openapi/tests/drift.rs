//! Fails when `openapi/toolbox.json` no longer matches the code. Regenerate with
//! `EXPECTORATE=overwrite cargo test --release -p cove-toolbox-openapi --test drift`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn toolbox_document_is_up_to_date() {
    expectorate::assert_contents(
        "../../openapi/toolbox.json",
        &cove_toolbox_openapi::document_json(),
    );
}

#[test]
fn every_operation_answers_errors_in_the_daemon_envelope() {
    let v: serde_json::Value =
        serde_json::from_str(&cove_toolbox_openapi::document_json()).expect("JSON");
    let shared = &v["components"]["responses"]["DaemonError"];
    assert_eq!(
        shared["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/DaemonErrorResponse"
    );
    assert!(v["components"]["schemas"]["DaemonErrorResponse"].is_object());
    assert!(v["components"]["schemas"]["DaemonErrorCode"].is_object());
    let paths = v["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            for status in ["4XX", "5XX"] {
                assert_eq!(
                    op["responses"][status]["$ref"], "#/components/responses/DaemonError",
                    "{method} {path} {status}"
                );
            }
            assert!(
                op["operationId"].as_str().is_some_and(|id| !id.is_empty()),
                "{method} {path} has no operationId"
            );
        }
    }
    let execute = &v["paths"]["/process/execute"]["post"];
    assert_eq!(
        execute["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ExecuteRequest"
    );
    assert_eq!(
        v["paths"]["/files/upload"]["post"]["deprecated"], true,
        "aliases are marked deprecated"
    );
}
