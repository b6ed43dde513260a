//! Build contexts: every `{orgId}/{hash}/context.tar` of a build, fetched from S3 (path-style,
//! `--s3-endpoint`, `--s3-bucket`, `--s3-region`; credentials from `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and optionally `AWS_SESSION_TOKEN`) and merged at the root of one
//! tar with the `Dockerfile`.
//!
//! A context fetched for a build is tagged [`CONTEXT_TAG`] (`cove-kind=build-context`): the SDK
//! uploads contexts into the same bucket as the volumes, and S3 lifecycle rules cannot exclude a
//! prefix, so a deployment expires stale contexts by that tag (`infra/terraform`, rule
//! `stale-build-contexts`). Tagging is best effort: a store without tagging (the embedded S3 of
//! `cove up`) logs it and the build goes on.

use std::path::{Path, PathBuf};

use aws_sdk_s3::config::{BehaviorVersion, Region};
use tokio::io::AsyncWriteExt;

/// Where build contexts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `None`: AWS's own endpoint of `region`.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: "cove".into(),
            region: "us-east-1".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {hash} not found (s3://{bucket}/{key})")]
    Missing {
        hash: String,
        bucket: String,
        key: String,
    },
    #[error("cannot fetch build context {hash}: {message}")]
    Fetch { hash: String, message: String },
    #[error(
        "no object storage credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) to fetch build contexts"
    )]
    NoCredentials,
    #[error("cannot assemble the build context: {0}")]
    Io(#[from] std::io::Error),
}

/// The S3 client of build contexts.
#[derive(Clone)]
pub struct ContextStore {
    client: Option<aws_sdk_s3::Client>,
    bucket: String,
}

impl ContextStore {
    /// A store over `settings`, with the credentials of the environment (none: fetching fails
    /// with [`ContextError::NoCredentials`]).
    pub fn from_env(settings: &S3Settings) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let creds = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => Some(aws_credential_types::Credentials::new(
                key,
                secret,
                var("AWS_SESSION_TOKEN"),
                None,
                "cove-runner",
            )),
            _ => None,
        };
        Self::new(settings, creds)
    }

    /// A store over `settings` with `creds` (none: fetching fails with
    /// [`ContextError::NoCredentials`]).
    pub fn new(settings: &S3Settings, creds: Option<aws_credential_types::Credentials>) -> Self {
        let client = match creds {
            Some(creds) => {
                let mut b = aws_sdk_s3::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(settings.region.clone()))
                    .credentials_provider(creds)
                    .http_client(https_client())
                    .force_path_style(true);
                if let Some(ep) = &settings.endpoint {
                    b = b.endpoint_url(ep);
                }
                Some(aws_sdk_s3::Client::from_conf(b.build()))
            }
            _ => None,
        };
        Self {
            client,
            bucket: settings.bucket.clone(),
        }
    }

    /// Whether the store has credentials to fetch with.
    pub fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// Downloads `{org}/{hash}/context.tar` to `dest`.
    pub async fn fetch(&self, org: &str, hash: &str, dest: &Path) -> Result<(), ContextError> {
        let client = self.client.as_ref().ok_or(ContextError::NoCredentials)?;
        let key = format!("{org}/{hash}/context.tar");
        let fetch_err = |message: String| ContextError::Fetch {
            hash: hash.to_owned(),
            message,
        };
        let resp = client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                if missing {
                    ContextError::Missing {
                        hash: hash.to_owned(),
                        bucket: self.bucket.clone(),
                        key: key.clone(),
                    }
                } else {
                    fetch_err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
                }
            })?;
        let mut body = resp.body;
        let mut file = tokio::fs::File::create(dest).await?;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| fetch_err(e.to_string()))?
        {
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        self.mark_used(client, &key).await;
        Ok(())
    }

    /// Tags the context `key` with [`CONTEXT_TAG`] (best effort, see the module docs).
    async fn mark_used(&self, client: &aws_sdk_s3::Client, key: &str) {
        let tag = aws_sdk_s3::types::Tag::builder()
            .key(CONTEXT_TAG.0)
            .value(CONTEXT_TAG.1)
            .build();
        let tagging = tag.and_then(|t| aws_sdk_s3::types::Tagging::builder().tag_set(t).build());
        let tagging = match tagging {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot describe the build context tag");
                return;
            }
        };
        let res = client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await;
        if let Err(e) = res {
            tracing::warn!(
                bucket = %self.bucket,
                key,
                error = %aws_sdk_s3::error::DisplayErrorContext(&e),
                "cannot tag the build context (its expiry by lifecycle rule will not apply)"
            );
        }
    }
}

/// The tag a fetched build context gets: `(key, value)`.
pub const CONTEXT_TAG: (&str, &str) = ("cove-kind", "build-context");

/// Whether a context tar entry is the root `Dockerfile` (the build's own replaces it).
fn is_root_dockerfile(path: &Path) -> bool {
    path.strip_prefix(".").unwrap_or(path) == Path::new("Dockerfile")
}

/// Writes `out`: every entry of `contexts` (in order, at the root) and then `Dockerfile`.
pub fn merge(dockerfile: &str, contexts: &[PathBuf], out: &Path) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(out)?));
    for ctx in contexts {
        let mut archive = tar::Archive::new(std::io::BufReader::new(std::fs::File::open(ctx)?));
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            if is_root_dockerfile(&path) {
                continue;
            }
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()?
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                builder.append_link(&mut header, &path, &target)?;
            } else {
                builder.append_data(&mut header, &path, &mut entry)?;
            }
        }
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    builder.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    Ok(())
}

/// The S3 SDK's HTTP(S) client: rustls with the ring provider (the SDK's default client would
/// build aws-lc-sys as well).
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn tar_of(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let path = dir.join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&path).expect("create"));
        for (p, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, content.as_bytes())
                .expect("append");
        }
        b.finish().expect("finish");
        path
    }

    #[test]
    fn contexts_merge_at_the_root_with_the_builds_dockerfile() {
        let dir = tempfile::tempdir().expect("tmp");
        let long = format!("app/{}/deep.txt", "d".repeat(120));
        let a = tar_of(
            dir.path(),
            "a.tar",
            &[("app/main.py", "print(1)"), ("Dockerfile", "FROM evil")],
        );
        let b = tar_of(dir.path(), "b.tar", &[(long.as_str(), "deep")]);
        let out = dir.path().join("ctx.tar");
        merge("FROM base\nCOPY app /app\n", &[a, b], &out).expect("merge");
        let mut found = std::collections::BTreeMap::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open"));
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            let p = e.path().expect("path").display().to_string();
            let mut s = String::new();
            e.read_to_string(&mut s).expect("read");
            found.insert(p, s);
        }
        assert_eq!(
            found.get("app/main.py").map(String::as_str),
            Some("print(1)")
        );
        assert_eq!(found.get(&long).map(String::as_str), Some("deep"));
        assert_eq!(
            found.get("Dockerfile").map(String::as_str),
            Some("FROM base\nCOPY app /app\n")
        );
        assert_eq!(
            found.len(),
            3,
            "the context's own Dockerfile is replaced: {found:?}"
        );
    }
}
