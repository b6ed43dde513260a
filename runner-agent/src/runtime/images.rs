//! Image operations of snapshot jobs: pull with credentials, build from a context tar, tag,
//! push. Docker implements them with bollard ([`super::docker`]), the simulated runtime in
//! memory ([`super::fake`]). Long-running: the caller bounds a whole job by its deadline.

use std::collections::HashMap;
use std::path::PathBuf;

use cove_runner_api::RegistryAuth;

/// Where an operation writes its progress lines (the job's log).
pub trait LogSink: Send + Sync {
    fn line(&self, line: &str);
}

/// A build: the context tar (the Dockerfile at its root as `Dockerfile`), the tag and labels of
/// the result, and credentials of the registries `FROM` images may come from.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context: PathBuf,
    pub tag: String,
    pub labels: HashMap<String, String>,
    pub registries: Vec<RegistryAuth>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A Dockerfile step failed (Docker's message, e.g. "The command '/bin/sh -c exit 3'
    /// returned a non-zero code: 3").
    #[error("{0}")]
    Build(String),
    /// A pull, push, tag or engine failure (Docker's message where there is one).
    #[error("{0}")]
    Failed(String),
}

pub type ImageResult<T> = std::result::Result<T, ImageError>;

/// The image operations of a container engine.
#[async_trait::async_trait]
pub trait ImageEngine: Send + Sync {
    /// Pulls `image` (with `auth` when given).
    async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        log: &dyn LogSink,
    ) -> ImageResult<()>;
    /// Builds and tags `req.tag`.
    async fn build(&self, req: &BuildRequest, log: &dyn LogSink) -> ImageResult<()>;
    /// Tags `image` as `target` (`host:port/repo:tag`).
    async fn tag(&self, image: &str, target: &str) -> ImageResult<()>;
    /// Pushes `target` (with `auth` when given).
    async fn push(
        &self,
        target: &str,
        auth: Option<&RegistryAuth>,
        log: &dyn LogSink,
    ) -> ImageResult<()>;
}

/// `repo:tag` of a reference: the tag is after the last `:` that follows the last `/`
/// (`host:5000/a/b:t` → (`host:5000/a/b`, `t`)); no tag → `latest`; a digest reference
/// (`repo@sha256:...`) is whole, with an empty tag.
pub fn split_tag(reference: &str) -> (&str, &str) {
    if reference.contains('@') {
        return (reference, "");
    }
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (
            &reference[..name_start + i],
            &reference[name_start + i + 1..],
        ),
        None => (reference, "latest"),
    }
}

/// The registry host of a reference (`host[:port]` when the first component looks like one,
/// else Docker Hub's `docker.io`).
pub fn registry_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repo_tag_and_registry() {
        assert_eq!(
            split_tag("127.0.0.1:5000/cove-o/daytona-ab:daytona"),
            ("127.0.0.1:5000/cove-o/daytona-ab", "daytona")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
        assert_eq!(split_tag("alpine:3.20"), ("alpine", "3.20"));
        assert_eq!(split_tag("alpine@sha256:0123"), ("alpine@sha256:0123", ""));
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/x/y"), "ghcr.io");
        assert_eq!(registry_of("library/alpine:3"), "docker.io");
        assert_eq!(registry_of("alpine"), "docker.io");
    }
}
