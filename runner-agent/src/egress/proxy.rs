//! The egress proxy's listener and connections (see the parent module for the decisions).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::hello::{MAX_HEAD, Name, server_name};
use super::log::{Decision, LOG, Verdict};
use super::resolve::Resolver;
use crate::network::egress::Compiled;

/// How long a connection may take to send its ClientHello or request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to the destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The port the proxy listens on, once started.
static PORT: OnceLock<u16> = OnceLock::new();
/// Destinations the isolation rules forbid (local networks, the operator's deny ranges),
/// refreshed with every write of the rules.
static FORBIDDEN: LazyLock<RwLock<Vec<Ipv4Net>>> = LazyLock::new(RwLock::default);

/// The proxy's port when it runs.
pub fn port() -> Option<u16> {
    PORT.get().copied()
}

/// Sets the local networks the proxy never connects to.
pub fn set_forbidden(nets: Vec<Ipv4Net>) {
    *FORBIDDEN.write().unwrap_or_else(|e| e.into_inner()) = nets;
}

/// Whether the isolation rules keep sandboxes away from `ip` (also true for this host's own
/// addresses, which the proxy would otherwise reach from the host).
fn forbidden(ip: Ipv4Addr) -> bool {
    let fixed = ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || Ipv4Net::new(Ipv4Addr::new(0, 0, 0, 0), 8).is_ok_and(|n| n.contains(&ip));
    fixed
        || FORBIDDEN
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|n| n.contains(&ip))
        // Binding succeeds only to a local address.
        || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Starts the proxy on `bind` (port chosen by the kernel); runs until the agent stops.
pub async fn start(bind: Ipv4Addr, resolver: Resolver) -> std::io::Result<u16> {
    let listener = TcpListener::bind((bind, 0)).await?;
    let port = listener.local_addr()?.port();
    let _ = PORT.set(port);
    let resolver = Arc::new(resolver);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, peer)) => {
                    tokio::spawn(handle(conn, peer, resolver.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "egress proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    tracing::info!(%bind, port, "egress proxy listening");
    Ok(port)
}

/// One redirected connection.
async fn handle(mut conn: TcpStream, peer: SocketAddr, resolver: Arc<Resolver>) {
    let _ = conn.set_nodelay(true);
    let IpAddr::V4(src) = peer.ip() else { return };
    let Ok(dst) = rustix::net::sockopt::ip_original_dst(&conn) else {
        return;
    };
    let Some((sandbox, policy)) = crate::network::egress::by_ip(src) else {
        tracing::debug!(%src, "egress proxy: connection from an address without a policy");
        return;
    };
    let (head, name) = read_head(&mut conn).await;
    let verdict = decide(&resolver, &policy, dst, name.as_deref()).await;
    LOG.record(
        &sandbox,
        Decision {
            time: super::log::now(),
            destination: dst.to_string(),
            domain: name.clone(),
            verdict: if verdict.is_ok() {
                Verdict::Allowed
            } else {
                Verdict::Denied
            },
            reason: verdict.err().map(str::to_owned),
            rule: Some("proxy".to_owned()),
        },
    );
    match verdict {
        Ok(()) => relay(conn, dst, &head).await,
        Err(reason) => {
            tracing::info!(%sandbox, %dst, domain = ?name, reason, "egress refused");
            refuse(conn, &head, reason).await;
        }
    }
}

/// The first bytes of the connection and the name they ask for.
async fn read_head(conn: &mut TcpStream) -> (Vec<u8>, Option<String>) {
    let mut buf = Vec::with_capacity(2048);
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            match server_name(&buf) {
                Name::Found(n) => return n,
                Name::Unknown => return None,
                Name::Incomplete if buf.len() >= MAX_HEAD => return None,
                Name::Incomplete => {}
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    (buf, read.ok().flatten())
}

/// `Ok` to connect, `Err(reason)` to refuse.
async fn decide(
    resolver: &Resolver,
    policy: &Compiled,
    dst: SocketAddrV4,
    name: Option<&str>,
) -> Result<(), &'static str> {
    let ip = *dst.ip();
    if forbidden(ip) {
        return Err("destination forbidden by the isolation rules");
    }
    if policy.deny.iter().any(|n| n.contains(&ip)) {
        return Err("destination in the CIDR deny-list");
    }
    if let Some(n) = name.filter(|n| policy.domains.deny.matches(n)) {
        let _ = n;
        return Err("domain in the deny-list");
    }
    if policy.allow.iter().any(|n| n.contains(&ip)) {
        return Ok(());
    }
    policy.domains.judge(name)?;
    let name = name.unwrap_or_default();
    if resolver.lookup(name).await.contains(&ip) {
        Ok(())
    } else {
        Err("destination is not an address of the name (DNS pinning)")
    }
}

/// Connects to `dst`, replays `head` and relays both ways until either side closes.
async fn relay(mut conn: TcpStream, dst: SocketAddrV4, head: &[u8]) {
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dst)).await;
    let mut up = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%dst, error = %e, "egress destination refused the connection");
            reset(&conn);
            return;
        }
        Err(_) => return,
    };
    let _ = up.set_nodelay(true);
    if up.write_all(head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
}

/// Makes closing `conn` send a reset (zero linger: closing does not wait).
fn reset(conn: &TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(conn, Some(Duration::ZERO));
}

/// Refuses: an HTTP request gets a 403 that says why, anything else a reset.
async fn refuse(mut conn: TcpStream, head: &[u8], reason: &str) {
    if head.first().is_some_and(|b| b.is_ascii_alphabetic()) {
        let body = format!("refused by the sandbox's egress policy: {reason}\n");
        let resp = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(resp.as_bytes()).await;
        let _ = conn.shutdown().await;
    } else {
        reset(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_link_local_are_forbidden() {
        set_forbidden(vec!["172.31.0.0/16".parse().expect("net")]);
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "0.1.2.3",
            "224.0.0.1",
            "172.31.4.5",
        ] {
            assert!(forbidden(ip.parse().expect("ip")), "{ip}");
        }
        assert!(!forbidden(Ipv4Addr::new(198, 51, 100, 1)));
    }
}
