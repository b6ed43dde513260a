//! The toolbox daemon's OpenAPI document (feature `openapi`): the operations of the route table
//! ([`crate::routes`]) plus the error envelope. Checked in as `openapi/toolbox.json`; the tests
//! of `toolbox/openapi` fail when it drifts from the code.

use cove_api_types::toolbox::DaemonErrorResponse;

use crate::error::{DAEMON_ERROR, daemon_error_response};
use utoipa::OpenApi;
use utoipa::openapi::{InfoBuilder, OpenApi as Doc};

#[derive(OpenApi)]
#[openapi(
    components(schemas(DaemonErrorResponse)),
    tags(
        (name = "info", description = "Version and directories"),
        (name = "server", description = "Set-up by the runner"),
        (name = "file-system", description = "Files and directories (CONTRACT §10, §10.1, §10.2)"),
        (name = "process", description = "Commands and sessions (CONTRACT §10.3, §10.4)"),
        (name = "git", description = "Git working copies (CONTRACT §10.5)"),
        (name = "lsp", description = "Language servers (CONTRACT §10.6)"),
        (name = "interpreter", description = "Stateful Python contexts (the SDKs' code_interpreter)"),
    )
)]
struct Base;

/// The whole document.
pub fn document() -> Doc {
    let mut doc = Base::openapi();
    doc.merge(crate::routes::Operations::openapi());
    doc.components
        .get_or_insert_with(Default::default)
        .responses
        .insert(DAEMON_ERROR.to_owned(), daemon_error_response().into());
    doc.info = InfoBuilder::new()
        .title("Cove toolbox daemon")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Daytona's toolbox API as served by `cove-toolbox` inside every sandbox. Errors are \
             the daemon's envelope (`source: DAYTONA_DAEMON`); JSON bodies are limited to 8 MiB \
             (413), uploads are streamed and unlimited; command output is kept to its last 4 MiB.",
        ))
        .build();
    doc
}
