//! The spin.toml used by the integration tests.

use super::component;

/// An application with:
/// - `echo` (public at `/echo/...` and `/exact`): may call `*.spin.internal` and `{{ backend_url }}`;
/// - `internal` (private): reachable only as `http://internal.spin.internal`;
/// - `stranger` (public at `/stranger/...`): no outbound hosts granted at all;
/// - `p2` (public at `/p2/...`): a WASIp2 incoming-handler component;
/// - `small` (public at `/small/...`): request bodies up to 1000 bytes;
/// - `stream` (public at `/stream/...`): request bodies of any size (`max_request_body_bytes = "0"`).
pub fn app(backend_url: &str) -> String {
    let echo = component("host_echo");
    let p2 = component("host_echo_p2");
    let echo = echo.display();
    let p2 = p2.display();
    format!(
        r#"
spin_manifest_version = 2

[application]
name = "host-tests"

[variables]
greeting = {{ default = "hello" }}
backend_url = {{ default = "{backend_url}" }}
unlisted_secret = {{ default = "do-not-leak", secret = true }}
dynamodb_endpoint = {{ required = true }}

[[trigger.http]]
route = "/echo/..."
component = "echo"

[[trigger.http]]
route = "/exact"
component = "echo"

[[trigger.http]]
route = {{ private = true }}
component = "internal"

[[trigger.http]]
route = "/stranger/..."
component = "stranger"

[[trigger.http]]
route = "/p2/..."
component = "p2"

[component.echo]
source = "{echo}"
allowed_outbound_hosts = ["http://*.spin.internal", "{{{{ backend_url }}}}"]
environment = {{ ECHO_ENV = "from-manifest", COMPONENT = "echo" }}
[component.echo.variables]
greeting = "{{{{ greeting }}}}"
dynamo = "{{{{ dynamodb_endpoint }}}}"

[component.internal]
source = "{echo}"
environment = {{ COMPONENT = "internal" }}

[component.stranger]
source = "{echo}"
environment = {{ COMPONENT = "stranger" }}

[[trigger.http]]
route = "/small/..."
component = "small"

[[trigger.http]]
route = "/stream/..."
component = "stream"

[component.p2]
source = "{p2}"

[component.small]
source = "{echo}"
[component.small.variables]
max_request_body_bytes = "1000"

[component.stream]
source = "{echo}"
[component.stream.variables]
max_request_body_bytes = "0"
"#
    )
}
