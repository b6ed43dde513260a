//! A local certificate authority for the embedded S3's HTTPS listener.
//!
//! The official SDK uploads build contexts with obstore, which refuses plain-HTTP endpoints
//! (and gives no way to allow them), so `storageUrl` must be HTTPS. `cove up` keeps a CA per data
//! directory (`<data_dir>/tls/ca.pem`, key `ca.key` mode 0600) and issues a fresh certificate for
//! `127.0.0.1` / `localhost` at every start. Clients trust `ca.pem` (system store, or
//! `SSL_CERT_FILE`); the path is printed as `COVE_CA_CERT=`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

/// The data directory's CA, and an acceptor serving a certificate it issued.
pub struct LocalTls {
    /// `<data_dir>/tls/ca.pem`.
    pub ca_cert: PathBuf,
    pub acceptor: TlsAcceptor,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Io { path, source }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Cove local CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

/// The CA's key, created (with `ca.pem`) on first use.
fn ca_key(dir: &Path) -> Result<KeyPair, TlsError> {
    let key_path = dir.join("ca.key");
    let cert_path = dir.join("ca.pem");
    if key_path.exists() && cert_path.exists() {
        let pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        return Ok(KeyPair::from_pem(&pem)?);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
    Ok(key)
}

impl LocalTls {
    /// Loads (or creates) the CA under `<data_dir>/tls` and issues a server certificate.
    pub fn load(data_dir: &Path) -> Result<Self, TlsError> {
        let dir = data_dir.join("tls");
        let issuer = Issuer::new(ca_params(), ca_key(&dir)?);
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "cove embedded S3");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // Explicit provider, as everywhere in Cove: ring.
        let provider = tokio_rustls::rustls::crypto::ring::default_provider();
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_cert: dir.join("ca.pem"),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}
