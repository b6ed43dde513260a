//! The project's `spin.toml` must run unmodified under the real `spin up`, which rejects unknown
//! fields: every key used must be one of Spin's manifest v2 keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use toml::Value;

const TOP: &[&str] = &[
    "spin_manifest_version",
    "application",
    "variables",
    "trigger",
    "component",
];
const APPLICATION: &[&str] = &[
    "name",
    "version",
    "description",
    "authors",
    "targets",
    "trigger",
];
const VARIABLE: &[&str] = &["default", "required", "secret"];
const HTTP_TRIGGER: &[&str] = &["id", "route", "component", "executor", "static_response"];
const COMPONENT: &[&str] = &[
    "description",
    "source",
    "files",
    "exclude_files",
    "allowed_outbound_hosts",
    "allowed_http_hosts",
    "key_value_stores",
    "sqlite_databases",
    "ai_models",
    "environment",
    "build",
    "variables",
    "targets",
    "dependencies",
    "dependencies_inherit_configuration",
    "tool",
];
const BUILD: &[&str] = &["command", "workdir", "watch"];

fn keys_within(table: &Value, allowed: &[&str], at: &str) {
    for k in table
        .as_table()
        .unwrap_or_else(|| panic!("{at} must be a table"))
        .keys()
    {
        assert!(
            allowed.contains(&k.as_str()),
            "{at}.{k} is not a Spin manifest v2 key"
        );
    }
}

#[test]
fn spin_toml_uses_only_spin_manifest_v2_keys() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spin.toml");
    let doc: Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    keys_within(&doc, TOP, "");
    assert_eq!(doc["spin_manifest_version"].as_integer(), Some(2));
    keys_within(&doc["application"], APPLICATION, "application");
    for (name, var) in doc["variables"].as_table().unwrap() {
        keys_within(var, VARIABLE, &format!("variables.{name}"));
        let t = var.as_table().unwrap();
        assert!(
            t.contains_key("default")
                != t.get("required").and_then(Value::as_bool).unwrap_or(false),
            "variables.{name}: exactly one of default / required = true"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
    }
    let triggers = doc["trigger"]["http"].as_array().unwrap();
    assert!(!triggers.is_empty());
    let components = doc["component"].as_table().unwrap();
    for t in triggers {
        keys_within(t, HTTP_TRIGGER, "trigger.http");
        let c = t["component"].as_str().unwrap();
        assert!(
            components.contains_key(c),
            "trigger names unknown component {c}"
        );
        match &t["route"] {
            Value::String(r) => assert!(r.starts_with('/'), "{r}"),
            Value::Table(r) => assert_eq!(r.get("private").and_then(Value::as_bool), Some(true)),
            other => panic!("bad route {other:?}"),
        }
    }
    for (id, c) in components {
        keys_within(c, COMPONENT, &format!("component.{id}"));
        if let Some(b) = c.get("build") {
            keys_within(b, BUILD, &format!("component.{id}.build"));
        }
        for (var, value) in c
            .get("variables")
            .and_then(Value::as_table)
            .into_iter()
            .flatten()
        {
            let v = value.as_str().unwrap();
            if let Some(inner) = v.strip_prefix("{{").and_then(|v| v.strip_suffix("}}")) {
                assert!(
                    doc["variables"].get(inner.trim()).is_some(),
                    "component.{id}.variables.{var} -> {v}"
                );
            }
        }
    }
}
