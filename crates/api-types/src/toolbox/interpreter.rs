//! Code interpreter wire types (`/process/interpreter/*`): the `CreateContextRequest`,
//! `InterpreterContext` and `ListContextsResponse` models of the toolbox API, and the JSON
//! messages of the `GET /process/interpreter/execute` websocket, which the document does not
//! describe: shaped as the official SDKs' `code_interpreter.run_code` sends and reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The id the SDKs mean when they pass no context: the shared context that exists without a
/// create (started on first use), is never listed and cannot be deleted.
pub const DEFAULT_CONTEXT_ID: &str = "default";

/// The one language contexts speak.
pub const LANGUAGE_PYTHON: &str = "python";

/// `POST /process/interpreter/context` body: both fields optional (`cwd` defaults to the
/// sandbox work dir, `language` to `python`, the only one served).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateContextRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A context: `active` tells whether its interpreter process is running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InterpreterContext {
    pub id: String,
    pub cwd: String,
    /// RFC 3339 (UTC).
    pub created_at: String,
    pub active: bool,
    pub language: String,
}

/// `GET /process/interpreter/context`: the user-created contexts (never the default one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListContextsResponse {
    pub contexts: Vec<InterpreterContext>,
}

/// `DELETE /process/interpreter/context/{id}` answer: `{"message": "Context deleted successfully"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteContextResponse {
    pub message: String,
}

/// The first (and only) client message of the execute websocket, a JSON text frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InterpreterExecuteRequest {
    pub code: String,
    /// Absent (or [`DEFAULT_CONTEXT_ID`]): the default context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Seconds; absent means 600, 0 means none, negative is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Set in the interpreter's environment for this execution only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<BTreeMap<String, String>>,
}

/// `type` of a server message of the execute websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InterpreterChunkType {
    /// `text`: output the code wrote to stdout.
    Stdout,
    /// `text`: output the code wrote to stderr.
    Stderr,
    /// `name`, `value`, `traceback`: the exception the code raised.
    Error,
    /// `text`: `completed` once the execution is over.
    Control,
}

/// A server message of the execute websocket (a JSON text frame). Every field is always
/// present, empty when the type does not use it, as Daytona's daemon sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InterpreterChunk {
    #[serde(rename = "type")]
    pub kind: InterpreterChunkType,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub traceback: String,
}

impl InterpreterChunk {
    /// A `stdout`, `stderr` or `control` message carrying `text`.
    pub fn text(kind: InterpreterChunkType, text: String) -> Self {
        Self {
            kind,
            text,
            name: String::new(),
            value: String::new(),
            traceback: String::new(),
        }
    }

    /// An `error` message.
    pub fn error(name: String, value: String, traceback: String) -> Self {
        Self {
            kind: InterpreterChunkType::Error,
            text: String::new(),
            name,
            value,
            traceback,
        }
    }
}
