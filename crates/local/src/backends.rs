//! Embedded backends for local use: DynamoDB (dynoxide on SQLite) and S3 (s3s-fs on a
//! directory), each served over HTTP on 127.0.0.1 with a port chosen at run time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::BackendArgs;

/// Application variables whose values cove provides (see [`Backends::start`]).
pub const MANAGED_VARIABLES: [&str; 7] = [
    "dynamodb_endpoint",
    "dynamodb_table",
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "s3_endpoint",
    "s3_bucket",
];

/// The backends of one `cove up`, and what the application gets told about them.
pub struct Backends {
    pub embedded: Vec<EmbeddedServer>,
    pub store: cove_store::StoreConfig,
    /// Values of [`MANAGED_VARIABLES`].
    pub managed: HashMap<String, String>,
}

impl Backends {
    /// Starts the embedded DynamoDB and S3 servers the flags do not replace.
    pub async fn start(args: &BackendArgs, data_dir: &Path) -> Result<Self, BackendError> {
        let credentials = Credentials::from_env();
        let mut embedded = Vec::new();
        let dynamodb_endpoint = match &args.dynamodb_endpoint {
            Some(url) => url.clone(),
            None => embedded_url(
                &mut embedded,
                start_dynamodb(&data_dir.join("dynamodb")).await?,
            ),
        };
        let s3_endpoint = match &args.s3_endpoint {
            Some(url) => url.clone(),
            None => {
                let server = start_s3(&data_dir.join("s3"), &args.s3_bucket, &credentials).await?;
                embedded_url(&mut embedded, server)
            }
        };
        let managed = HashMap::from([
            ("dynamodb_endpoint", dynamodb_endpoint.clone()),
            ("dynamodb_table", args.dynamodb_table.clone()),
            ("aws_region", credentials.region.clone()),
            ("aws_access_key_id", credentials.access_key_id.clone()),
            (
                "aws_secret_access_key",
                credentials.secret_access_key.clone(),
            ),
            ("s3_endpoint", s3_endpoint),
            ("s3_bucket", args.s3_bucket.clone()),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<HashMap<_, _>>();
        debug_assert!(MANAGED_VARIABLES.iter().all(|n| managed.contains_key(*n)));
        let store = cove_store::StoreConfig {
            endpoint: dynamodb_endpoint,
            region: credentials.region,
            table: args.dynamodb_table.clone(),
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
        };
        Ok(Self {
            embedded,
            store,
            managed,
        })
    }

    /// Stops the embedded servers.
    pub async fn stop(self) {
        for backend in self.embedded {
            backend.stop().await;
        }
    }
}

fn embedded_url(embedded: &mut Vec<EmbeddedServer>, server: EmbeddedServer) -> String {
    let url = server.url.clone();
    embedded.push(server);
    url
}

/// AWS-style credentials: what components sign requests with, and what the embedded S3
/// server accepts (dynoxide accepts any).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_REGION` (or `AWS_DEFAULT_REGION`),
    /// falling back to `cove` / `cove-secret` / `us-east-1`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            access_key_id: var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "cove".into()),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "cove-secret".into()),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the embedded DynamoDB database {path}")]
    OpenDynamo {
        path: PathBuf,
        #[source]
        source: dynoxide::DynoxideError,
    },
    #[error("cannot open the embedded S3 store at {path}: {detail}")]
    OpenS3 { path: PathBuf, detail: String },
    #[error("cannot listen on 127.0.0.1")]
    Bind(#[source] std::io::Error),
}

/// A backend server running inside this process.
pub struct EmbeddedServer {
    pub url: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EmbeddedServer {
    /// Stops accepting connections and waits (briefly) for open ones to finish.
    pub async fn stop(self) {
        let started = std::time::Instant::now();
        let _ = self.shutdown.send(true);
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
        tracing::debug!(
            url = self.url,
            clean = stopped.is_ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "embedded backend stopped"
        );
    }
}

fn create_dir(path: &Path) -> Result<(), BackendError> {
    std::fs::create_dir_all(path).map_err(|source| BackendError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

async fn bind_loopback() -> Result<(TcpListener, SocketAddr), BackendError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(BackendError::Bind)?;
    let addr = listener.local_addr().map_err(BackendError::Bind)?;
    Ok((listener, addr))
}

async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    // An Err means the sender is gone, which also means shut down.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Starts dynoxide with its database at `<dir>/cove.db`.
pub async fn start_dynamodb(dir: &Path) -> Result<EmbeddedServer, BackendError> {
    create_dir(dir)?;
    let path = dir.join("cove.db");
    let db = dynoxide::Database::new(&path.to_string_lossy()).map_err(|source| {
        BackendError::OpenDynamo {
            path: path.clone(),
            source,
        }
    })?;
    let (listener, addr) = bind_loopback().await?;
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        if let Err(error) =
            dynoxide::server::serve_with_shutdown(listener, db, wait_for_shutdown(rx)).await
        {
            tracing::error!(%error, "embedded DynamoDB stopped");
        }
    });
    let url = format!("http://{addr}");
    tracing::info!(url, path = %path.display(), "embedded DynamoDB (dynoxide) started");
    Ok(EmbeddedServer {
        url,
        shutdown,
        task,
    })
}

/// Starts an S3 server over `<dir>` (one sub-directory per bucket), creating `bucket`;
/// it accepts requests signed with `credentials`.
pub async fn start_s3(
    dir: &Path,
    bucket: &str,
    credentials: &Credentials,
) -> Result<EmbeddedServer, BackendError> {
    create_dir(&dir.join(bucket))?;
    let fs = s3s_fs::FileSystem::new(dir).map_err(|e| BackendError::OpenS3 {
        path: dir.to_owned(),
        detail: format!("{e:?}"),
    })?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
    ));
    let service = builder.build();

    let (listener, addr) = bind_loopback().await?;
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(serve_s3(listener, service, rx));
    let url = format!("http://{addr}");
    tracing::info!(url, path = %dir.display(), bucket, "embedded S3 (s3s-fs) started");
    Ok(EmbeddedServer {
        url,
        shutdown,
        task,
    })
}

/// The embedded S3 server's accept loop, until `stop` turns true.
async fn serve_s3(
    listener: TcpListener,
    service: s3s::service::S3Service,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "embedded S3: accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "embedded S3 connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}
