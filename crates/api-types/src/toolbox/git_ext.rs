//! Toolbox wire types of the git routes Daytona added in 0.226 (CONTRACT §10.5): config,
//! credentials, remotes, reset and restore. Keys are single lowercase words, as upstream.

use serde::{Deserialize, Serialize};

/// `GET /git/config?key=&path=&scope=`'s answer: `value` is `null` when the key is unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitConfigResponse {
    pub value: Option<String>,
}

/// `POST /git/config`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitSetConfigRequest {
    pub key: String,
    pub value: String,
    /// The repository, required when `scope` is `local`.
    #[serde(default)]
    pub path: Option<String>,
    /// `global` (default), `local` or `system`.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `POST /git/config/user`: sets `user.name` and `user.email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitConfigureUserRequest {
    pub name: String,
    pub email: String,
    /// The repository, required when `scope` is `local`.
    #[serde(default)]
    pub path: Option<String>,
    /// `global` (default), `local` or `system`.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `POST /git/credentials`: stored with git's `store` helper (in plain text, mode 0600) for
/// later clones, pulls and pushes of `protocol://host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitAuthenticateRequest {
    pub username: String,
    pub password: String,
    /// Default `github.com`.
    #[serde(default)]
    pub host: Option<String>,
    /// Default `https`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// One remote of `GET /git/remotes` (a password in its URL is left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitRemote {
    pub name: String,
    pub url: String,
}

/// `GET /git/remotes?path=`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListRemotesResponse {
    pub remotes: Vec<GitRemote>,
}

/// `POST /git/remotes` → 201
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitAddRemoteRequest {
    pub path: String,
    pub name: String,
    pub url: String,
    /// Fetch from the remote right after adding it.
    #[serde(default)]
    pub fetch: Option<bool>,
    /// Replace a remote of the same name.
    #[serde(default)]
    pub overwrite: Option<bool>,
}

/// `POST /git/reset`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitResetRequest {
    pub path: String,
    /// `soft`, `mixed` (default), `hard`, `merge` or `keep`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The revision to reset to (default `HEAD`).
    #[serde(default)]
    pub target: Option<String>,
    /// Only these paths.
    #[serde(default)]
    pub files: Option<Vec<String>>,
}

/// `POST /git/restore`: with neither `staged` nor `worktree`, the working tree is restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitRestoreRequest {
    pub path: String,
    pub files: Vec<String>,
    /// Restore the index (unstage).
    #[serde(default)]
    pub staged: Option<bool>,
    /// Restore the working tree.
    #[serde(default)]
    pub worktree: Option<bool>,
    /// Take the contents from this revision instead of the index.
    #[serde(default)]
    pub source: Option<String>,
}
