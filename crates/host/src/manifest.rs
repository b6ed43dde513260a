//! Reading `spin.toml` (Spin manifest version 2).
//!
//! Only the keys cove acts on are modelled; every other key is ignored, so a manifest that
//! runs under the real `spin up` also loads here. Validation follows Spin where it matters:
//! variable and component names, routes, and triggers that name existing components.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse manifest {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("unsupported spin_manifest_version {found} (cove reads version 2)")]
    UnsupportedVersion { found: i64 },
    #[error(
        "invalid variable name {name:?}: use lowercase letters, digits and underscores, starting with a letter"
    )]
    InvalidVariableName { name: String },
    #[error("variable {name:?} has both a default and `required = true`")]
    DefaultAndRequired { name: String },
    #[error("variable {name:?} needs either a default or `required = true`")]
    NoDefaultNorRequired { name: String },
    #[error(
        "invalid component id {id:?}: use lowercase letters, digits, '-' and '_', starting with a letter or digit"
    )]
    InvalidComponentId { id: String },
    #[error("component {id:?}: only local `source` paths are supported by cove")]
    UnsupportedSource { id: String },
    #[error("component {id:?}: invalid variable name {name:?}")]
    InvalidComponentVariable { id: String, name: String },
    #[error("HTTP trigger refers to unknown component {component:?}")]
    UnknownTriggerComponent { component: String },
    #[error("component {component:?}: invalid route {route:?}: {reason}")]
    InvalidRoute {
        component: String,
        route: String,
        reason: &'static str,
    },
}

/// A validated Spin application manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Directory holding the manifest; relative paths resolve against it.
    pub dir: PathBuf,
    pub name: String,
    pub variables: BTreeMap<String, VariableDef>,
    pub http_triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, ComponentDef>,
}

/// An application variable from `[variables]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDef {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub component: String,
    pub route: Route,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A public route: an exact path, or a prefix ending in `/...`.
    Path(String),
    /// Reachable only from other components at `http://<id>.spin.internal`.
    Private,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDef {
    pub id: String,
    /// Absolute path of the component's wasm file.
    pub source: PathBuf,
    /// Entries as written, possibly containing `{{ variable }}` templates.
    pub allowed_outbound_hosts: Vec<String>,
    pub environment: BTreeMap<String, String>,
    /// Component variable name to template over application variables.
    pub variables: BTreeMap<String, String>,
    pub build: Option<BuildDef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDef {
    pub commands: Vec<String>,
    /// Absolute working directory for the commands.
    pub workdir: PathBuf,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self::parse(&text, &dir).map_err(|e| match e {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates manifest text; `dir` anchors relative paths.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: PathBuf::from("<text>"),
            source: Box::new(source),
        })?;
        if raw.spin_manifest_version != 2 {
            return Err(ManifestError::UnsupportedVersion {
                found: raw.spin_manifest_version,
            });
        }

        let variables = parse_variables(raw.variables)?;
        let components = parse_components(raw.component, dir)?;
        let http_triggers = parse_triggers(raw.trigger.http, &components)?;

        Ok(Self {
            dir: dir.to_owned(),
            name: raw.application.name,
            variables,
            http_triggers,
            components,
        })
    }
}

fn parse_variables(
    raw: BTreeMap<String, RawVariable>,
) -> Result<BTreeMap<String, VariableDef>, ManifestError> {
    let mut variables = BTreeMap::new();
    for (name, v) in raw {
        if !is_variable_name(&name) {
            return Err(ManifestError::InvalidVariableName { name });
        }
        match (&v.default, v.required) {
            (Some(_), true) => return Err(ManifestError::DefaultAndRequired { name }),
            (None, false) => return Err(ManifestError::NoDefaultNorRequired { name }),
            _ => {}
        }
        variables.insert(
            name,
            VariableDef {
                default: v.default,
                required: v.required,
                secret: v.secret,
            },
        );
    }
    Ok(variables)
}

fn parse_components(
    raw: BTreeMap<String, RawComponent>,
    dir: &Path,
) -> Result<BTreeMap<String, ComponentDef>, ManifestError> {
    let mut components = BTreeMap::new();
    for (id, c) in raw {
        if !is_component_id(&id) {
            return Err(ManifestError::InvalidComponentId { id });
        }
        // `source = { url = ..., digest = ... }` (remote components) is not supported.
        let source = match c.source {
            toml::Value::String(p) => dir.join(p),
            _ => return Err(ManifestError::UnsupportedSource { id }),
        };
        if let Some(name) = c.variables.keys().find(|n| !is_variable_name(n)) {
            return Err(ManifestError::InvalidComponentVariable {
                id,
                name: name.clone(),
            });
        }
        let build = c.build.map(|b| BuildDef {
            commands: match b.command {
                RawCommand::One(c) => vec![c],
                RawCommand::Many(cs) => cs,
            },
            workdir: b.workdir.map_or_else(|| dir.to_owned(), |w| dir.join(w)),
        });
        components.insert(
            id.clone(),
            ComponentDef {
                id,
                source,
                allowed_outbound_hosts: c.allowed_outbound_hosts,
                environment: c.environment,
                variables: c.variables,
                build,
            },
        );
    }
    Ok(components)
}

fn parse_triggers(
    raw: Vec<RawHttpTrigger>,
    components: &BTreeMap<String, ComponentDef>,
) -> Result<Vec<HttpTrigger>, ManifestError> {
    let mut http_triggers = Vec::new();
    for t in raw {
        if !components.contains_key(&t.component) {
            return Err(ManifestError::UnknownTriggerComponent {
                component: t.component,
            });
        }
        let route = match t.route {
            RawRoute::Path(p) => {
                validate_route(&t.component, &p)?;
                Route::Path(p)
            }
            RawRoute::Private { private: true } => Route::Private,
            RawRoute::Private { private: false } => {
                return Err(ManifestError::InvalidRoute {
                    component: t.component,
                    route: "{ private = false }".into(),
                    reason: "a route table must be `{ private = true }`",
                });
            }
        };
        http_triggers.push(HttpTrigger {
            component: t.component,
            route,
        });
    }
    Ok(http_triggers)
}

fn validate_route(component: &str, route: &str) -> Result<(), ManifestError> {
    let err = |reason| ManifestError::InvalidRoute {
        component: component.to_owned(),
        route: route.to_owned(),
        reason,
    };
    if !route.starts_with('/') {
        return Err(err("must start with '/'"));
    }
    let body = route.strip_suffix("/...").unwrap_or(route);
    if body.contains("...") {
        return Err(err("'...' is only allowed as the last segment"));
    }
    if body.split('/').any(|s| s.starts_with(':')) {
        return Err(err("route parameters (':name') are not supported by cove"));
    }
    Ok(())
}

/// Spin variable names: lowercase ASCII letters, digits and `_`, starting with a letter.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_component_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

// ---- raw serde model (unknown keys are ignored) ----

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: i64,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
}

#[derive(Deserialize)]
struct RawVariable {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
struct RawBuild {
    command: RawCommand,
    #[serde(default)]
    workdir: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    One(String),
    Many(Vec<String>),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FULL: &str = r#"
spin_manifest_version = 2

[application]
name = "cove"
version = "0.1.0"
authors = ["someone"]

[variables]
dynamodb_endpoint = { required = true }
dynamodb_table = { default = "cove" }
admin_secret = { required = true, secret = true }

[[trigger.http]]
route = "/api/api-keys/..."
component = "api-keys"

[[trigger.http]]
route = "/health"
component = "api-keys"

[[trigger.http]]
route = { private = true }
component = "lifecycle"

[component.api-keys]
source = "target/wasm32-wasip2/wasm/api_keys.wasm"
allowed_outbound_hosts = ["{{ dynamodb_endpoint }}", "http://*.spin.internal"]
environment = { RUST_LOG = "info" }
key_value_stores = ["default"]
[component.api-keys.variables]
table = "{{ dynamodb_table }}"
endpoint = "{{dynamodb_endpoint}}"
[component.api-keys.build]
command = "cargo build --target wasm32-wasip2 --profile wasm -p api-keys"
watch = ["src/**/*.rs"]

[component.lifecycle]
source = "lifecycle.wasm"
[component.lifecycle.build]
command = ["echo one", "echo two"]
workdir = "functions/lifecycle"
"#;

    /// A stable text rendering of a manifest, compared against a golden string.
    fn render(m: &Manifest) -> String {
        let mut out = format!("name={}\n", m.name);
        for (k, v) in &m.variables {
            out += &format!(
                "var {k} default={:?} required={} secret={}\n",
                v.default, v.required, v.secret
            );
        }
        for t in &m.http_triggers {
            out += &format!("route {:?} -> {}\n", t.route, t.component);
        }
        for c in m.components.values() {
            out += &format!(
                "component {} source={} hosts={:?} env={:?} vars={:?}\n",
                c.id,
                c.source.display(),
                c.allowed_outbound_hosts,
                c.environment,
                c.variables
            );
            if let Some(b) = &c.build {
                out += &format!("  build {:?} in {}\n", b.commands, b.workdir.display());
            }
        }
        out
    }

    #[test]
    fn parses_full_manifest() {
        let m = Manifest::parse(FULL, Path::new("/app")).unwrap();
        let expected = r#"name=cove
var admin_secret default=None required=true secret=true
var dynamodb_endpoint default=None required=true secret=false
var dynamodb_table default=Some("cove") required=false secret=false
route Path("/api/api-keys/...") -> api-keys
route Path("/health") -> api-keys
route Private -> lifecycle
component api-keys source=/app/target/wasm32-wasip2/wasm/api_keys.wasm hosts=["{{ dynamodb_endpoint }}", "http://*.spin.internal"] env={"RUST_LOG": "info"} vars={"endpoint": "{{dynamodb_endpoint}}", "table": "{{ dynamodb_table }}"}
  build ["cargo build --target wasm32-wasip2 --profile wasm -p api-keys"] in /app
component lifecycle source=/app/lifecycle.wasm hosts=[] env={} vars={}
  build ["echo one", "echo two"] in /app/functions/lifecycle
"#;
        assert_eq!(render(&m), expected);
    }

    fn err(text: &str) -> String {
        match Manifest::parse(text, Path::new("/app")) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const HEAD: &str = "spin_manifest_version = 2\n[application]\nname = \"x\"\n";

    #[test]
    fn rejects_bad_manifests() {
        assert_eq!(
            err("spin_manifest_version = 1\n[application]\nname = \"x\"\n"),
            "unsupported spin_manifest_version 1 (cove reads version 2)"
        );
        assert!(
            err(&format!("{HEAD}[variables]\nBad = {{ default = \"1\" }}\n"))
                .contains("invalid variable name \"Bad\"")
        );
        assert!(
            err(&format!(
                "{HEAD}[variables]\nv = {{ default = \"1\", required = true }}\n"
            ))
            .contains("both a default")
        );
        assert!(
            err(&format!("{HEAD}[variables]\nv = {{ secret = true }}\n"))
                .contains("either a default")
        );
        assert!(
            err(&format!(
                "{HEAD}[[trigger.http]]\nroute = \"/a\"\ncomponent = \"nope\"\n"
            ))
            .contains("unknown component \"nope\"")
        );
        assert!(
            err(&format!(
                "{HEAD}[[trigger.http]]\nroute = \"a\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n"
            ))
            .contains("must start with '/'")
        );
        assert!(
            err(&format!(
                "{HEAD}[component.c]\nsource = {{ url = \"https://x/c.wasm\", digest = \"sha256:00\" }}\n"
            ))
            .contains("only local `source` paths")
        );
        assert!(
            err(&format!("{HEAD}[component.Bad]\nsource = \"c.wasm\"\n"))
                .contains("invalid component id")
        );
        assert!(
            err(&format!(
                "{HEAD}[component.c]\nsource = \"c.wasm\"\nvariables = {{ X = \"1\" }}\n"
            ))
            .contains("invalid variable name \"X\"")
        );
    }

    #[test]
    fn variable_names() {
        assert!(is_variable_name("aws_region2"));
        assert!(!is_variable_name("2x"));
        assert!(!is_variable_name("a-b"));
        assert!(!is_variable_name(""));
    }
}
