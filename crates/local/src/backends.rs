//! Embedded backends for local use: DynamoDB (dynoxide on SQLite), S3 (s3s-fs on a directory,
//! enforcing scoped credentials, see `s3_scope`) and the internal registry (`registry`), each
//! served over HTTP on 127.0.0.1 with a port chosen at run time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::BackendArgs;
use crate::registry::InternalRegistry;
use crate::registry::gate::GateAuth;
use crate::s3_scope::S3Scope;
use crate::secrets;
use crate::tls::LocalTls;
use tokio_rustls::TlsAcceptor;

/// Application variables whose values cove provides (see [`Backends::start`]).
pub const MANAGED_VARIABLES: [&str; 12] = [
    "dynamodb_endpoint",
    "dynamodb_table",
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "s3_endpoint",
    "s3_bucket",
    "s3_public_endpoint",
    "scoped_credentials_secret",
    "internal_registry",
    "internal_registry_username",
    "internal_registry_password",
];

/// Username of the internal registry's account when `--internal-registry-username` is not given.
pub const INTERNAL_REGISTRY_USER: &str = "cove-internal";

/// The backends of one `cove up`, and what the application gets told about them.
pub struct Backends {
    pub embedded: Vec<EmbeddedServer>,
    pub registry: Option<InternalRegistry>,
    pub store: cove_store::StoreConfig,
    /// Values of [`MANAGED_VARIABLES`].
    pub managed: HashMap<String, String>,
    /// The CA of the embedded S3's HTTPS listener (`s3_public_endpoint`), when it runs.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl Backends {
    /// Starts the embedded DynamoDB and S3 servers and the internal registry the flags do not
    /// replace.
    pub async fn start(args: &BackendArgs, data_dir: &Path) -> Result<Self, BackendError> {
        let credentials = Credentials::from_env();
        let platform_secret =
            secrets::variable_or_persisted(data_dir, "scoped_credentials_secret")?;
        let mut embedded = Vec::new();
        let mut ca_cert = None;
        let dynamodb_endpoint = match &args.dynamodb_endpoint {
            Some(url) => url.clone(),
            None => embedded_url(
                &mut embedded,
                start_dynamodb(&data_dir.join("dynamodb")).await?,
            ),
        };
        let (s3_endpoint, s3_public) = match &args.s3_endpoint {
            Some(url) => (url.clone(), url.clone()),
            None => {
                let scope = S3Scope {
                    master_access_key: credentials.access_key_id.clone(),
                    master_secret_key: credentials.secret_access_key.clone(),
                    platform_secret: platform_secret.clone().into_bytes(),
                    bucket: args.s3_bucket.clone(),
                };
                let tls = LocalTls::load(data_dir)?;
                let (http, https) = start_s3(&data_dir.join("s3"), scope, Some(&tls)).await?;
                let public = https.as_ref().map_or(http.url.clone(), |s| s.url.clone());
                embedded.extend(https);
                ca_cert = Some(tls.ca_cert);
                (embedded_url(&mut embedded, http), public)
            }
        };
        let (registry, registry_vars) =
            start_registry(args, data_dir, platform_secret.as_bytes()).await?;
        let mut managed = HashMap::from([
            ("dynamodb_endpoint", dynamodb_endpoint.clone()),
            ("dynamodb_table", args.dynamodb_table.clone()),
            ("aws_region", credentials.region.clone()),
            ("aws_access_key_id", credentials.access_key_id.clone()),
            (
                "aws_secret_access_key",
                credentials.secret_access_key.clone(),
            ),
            ("s3_public_endpoint", s3_public),
            ("s3_endpoint", s3_endpoint),
            ("s3_bucket", args.s3_bucket.clone()),
            ("scoped_credentials_secret", platform_secret),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<HashMap<_, _>>();
        managed.extend(registry_vars);
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
            registry,
            store,
            managed,
            ca_cert,
        })
    }

    /// Stops the internal registry and the embedded servers.
    pub async fn stop(self) {
        if let Some(registry) = self.registry {
            registry.stop().await;
        }
        for backend in self.embedded {
            backend.stop().await;
        }
    }
}

/// The internal registry (started here unless `--internal-registry` names an external one or
/// `--no-internal-registry` turns it off) and its variables.
async fn start_registry(
    args: &BackendArgs,
    data_dir: &Path,
    platform_secret: &[u8],
) -> Result<(Option<InternalRegistry>, HashMap<String, String>), BackendError> {
    let username = args
        .internal_registry_username
        .clone()
        .unwrap_or_else(|| INTERNAL_REGISTRY_USER.to_owned());
    let password = match &args.internal_registry_password {
        Some(p) => p.clone(),
        None if args.internal_registry.is_some() || args.no_internal_registry => String::new(),
        None => secrets::persisted(data_dir, "internal_registry_password")?,
    };
    let (registry, host) = match (&args.internal_registry, args.no_internal_registry) {
        (Some(host), _) => (None, host.clone()),
        (None, true) => (None, String::new()),
        (None, false) => {
            let auth = GateAuth {
                internal_username: username.clone(),
                internal_password: password.clone(),
                platform_secret: platform_secret.to_vec(),
            };
            let registry = InternalRegistry::start(data_dir, auth).await?;
            let host = registry.host().to_owned();
            (Some(registry), host)
        }
    };
    let vars = HashMap::from([
        ("internal_registry".to_owned(), host),
        ("internal_registry_username".to_owned(), username),
        ("internal_registry_password".to_owned(), password),
    ]);
    Ok((registry, vars))
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
    #[error("internal registry: {detail}")]
    Registry {
        detail: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
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

/// Starts an S3 server over `<dir>` (one sub-directory per bucket), creating `scope.bucket`;
/// it accepts the master credentials and scoped ones ([`S3Scope`]). With `tls`, the same
/// service also listens for HTTPS on a second port (the second server returned).
pub async fn start_s3(
    dir: &Path,
    scope: S3Scope,
    tls: Option<&LocalTls>,
) -> Result<(EmbeddedServer, Option<EmbeddedServer>), BackendError> {
    let bucket = scope.bucket.clone();
    create_dir(&dir.join(&bucket))?;
    let fs = s3s_fs::FileSystem::new(dir).map_err(|e| BackendError::OpenS3 {
        path: dir.to_owned(),
        detail: format!("{e:?}"),
    })?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(scope.clone());
    builder.set_access(scope);
    let service = builder.build();
    let server = serve_embedded("embedded S3", service.clone()).await?;
    let https = match tls {
        Some(tls) => Some(serve_tls("embedded S3 (https)", service, tls.acceptor.clone()).await?),
        None => None,
    };
    let https_url = https.as_ref().map(|s| s.url.as_str());
    tracing::info!(url = server.url, https = https_url, path = %dir.display(), bucket, "embedded S3 (s3s-fs) started");
    Ok((server, https))
}

/// Serves `service` on a free loopback port until the server is stopped.
pub async fn serve_embedded<S, B>(
    name: &'static str,
    service: S,
) -> Result<EmbeddedServer, BackendError>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_on(name, service, None).await
}

/// [`serve_embedded`] over TLS: the server's URL is `https://127.0.0.1:<port>`.
pub async fn serve_tls<S, B>(
    name: &'static str,
    service: S,
    acceptor: TlsAcceptor,
) -> Result<EmbeddedServer, BackendError>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_on(name, service, Some(acceptor)).await
}

async fn serve_on<S, B>(
    name: &'static str,
    service: S,
    tls: Option<TlsAcceptor>,
) -> Result<EmbeddedServer, BackendError>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (listener, addr) = bind_loopback().await?;
    let (shutdown, rx) = watch::channel(false);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(serve_loop(name, listener, service, tls, rx));
    Ok(EmbeddedServer {
        url: format!("{scheme}://{addr}"),
        shutdown,
        task,
    })
}

fn http1_conn<I, S, B>(io: I, service: S) -> http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
}

/// An embedded server's accept loop, until `stop` turns true.
async fn serve_loop<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, name, "accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(http1_conn(TokioIo::new(stream), service))
                        .await
                }
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        watcher
                            .watch(http1_conn(TokioIo::new(stream), service))
                            .await
                    }
                    Err(error) => {
                        tracing::debug!(%error, name, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(error) = served {
                tracing::debug!(%error, name, "connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}
