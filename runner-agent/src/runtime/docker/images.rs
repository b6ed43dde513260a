//! [`ImageEngine`] over bollard: `create_image` (pull), `build_image` (the classic builder; a
//! `FROM` image already on the engine is used as is, a missing one is pulled), `tag_image`,
//! `push_image`. Progress goes to the job's log; passwords never do.

use std::collections::HashMap;

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::ProgressDetail;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use cove_runner_api::RegistryAuth;
use futures::StreamExt;

use super::DockerRuntime;
use crate::runtime::images::{
    BuildRequest, ImageEngine, ImageError, ImageResult, LogSink, split_tag,
};

fn credentials(auth: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: Some(auth.username.clone()),
        password: Some(auth.password.clone()),
        serveraddress: Some(auth.server.clone()),
        ..Default::default()
    }
}

/// Docker's own words for a failure.
fn message(e: BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message,
        BollardError::DockerStreamError { error } => error,
        other => other.to_string(),
    }
}

/// Whether a build failure is the Dockerfile's (a step, a parse error, a missing `FROM` image)
/// rather than the engine's or the transport's.
fn is_build_failure(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerStreamError { .. } | BollardError::DockerResponseServerError { .. }
    )
}

/// One progress line worth logging: status changes, not every byte-count tick.
fn progress_line(
    id: Option<&str>,
    status: Option<&str>,
    detail: Option<&ProgressDetail>,
) -> Option<String> {
    let status = status?;
    if detail.is_some_and(|d| d.current.is_some()) {
        return None;
    }
    Some(match id {
        Some(id) if !id.is_empty() => format!("{id}: {status}"),
        _ => status.to_owned(),
    })
}

/// The context tar, read in chunks (the body of the build request).
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 256 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[async_trait::async_trait]
impl ImageEngine for DockerRuntime {
    async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        log: &dyn LogSink,
    ) -> ImageResult<()> {
        let (repo, tag) = split_tag(image);
        let mut opts = CreateImageOptionsBuilder::new().from_image(repo);
        if !tag.is_empty() {
            opts = opts.tag(tag);
        }
        let opts = opts.build();
        let mut stream = self
            .docker
            .create_image(Some(opts), None, auth.map(credentials));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| ImageError::Failed(message(e)))?;
            let line = progress_line(
                info.id.as_deref(),
                info.status.as_deref(),
                info.progress_detail.as_ref(),
            );
            if let Some(line) = line {
                log.line(&line);
            }
        }
        Ok(())
    }

    async fn build(&self, req: &BuildRequest, log: &dyn LogSink) -> ImageResult<()> {
        let file = tokio::fs::File::open(&req.context)
            .await
            .map_err(|e| ImageError::Failed(format!("opening the build context: {e}")))?;
        let opts = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(&req.tag)
            .rm(true)
            .forcerm(true)
            .labels(&req.labels)
            .build();
        let creds: HashMap<String, DockerCredentials> = req
            .registries
            .iter()
            .map(|a| (a.server.clone(), credentials(a)))
            .collect();
        let mut stream = self.docker.build_image(
            opts,
            Some(creds),
            Some(bollard::body_try_stream(file_chunks(file))),
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| {
                if is_build_failure(&e) {
                    ImageError::Build(message(e))
                } else {
                    ImageError::Failed(message(e))
                }
            })?;
            if let Some(text) = info.stream.as_deref() {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    log.line(line);
                }
            } else if let Some(line) = progress_line(
                info.id.as_deref(),
                info.status.as_deref(),
                info.progress_detail.as_ref(),
            ) {
                log.line(&line);
            }
        }
        Ok(())
    }

    async fn tag(&self, image: &str, target: &str) -> ImageResult<()> {
        let (repo, tag) = split_tag(target);
        let opts = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .map_err(|e| ImageError::Failed(message(e)))
    }

    async fn push(
        &self,
        target: &str,
        auth: Option<&RegistryAuth>,
        log: &dyn LogSink,
    ) -> ImageResult<()> {
        let (repo, tag) = split_tag(target);
        let opts = PushImageOptionsBuilder::new().tag(tag).build();
        let mut stream = self
            .docker
            .push_image(repo, Some(opts), auth.map(credentials));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| ImageError::Failed(message(e)))?;
            let line = progress_line(None, info.status.as_deref(), info.progress_detail.as_ref());
            if let Some(line) = line {
                log.line(&line);
            }
        }
        Ok(())
    }
}
