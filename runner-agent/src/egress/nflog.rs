//! The CIDR rules' decisions: each sandbox policy chain logs new connections with their verdict
//! to an NFLOG group (`network::firewall`, prefixes `cove-a` / `cove-d`); one thread reads that
//! group from a netlink socket and appends each attempt to the sandbox's decision log
//! ([`super::log`], `rule: "cidr"`). The kernel drops what the socket buffer cannot hold
//! (counted, never queued in the agent), so a flood of attempts costs no memory beyond the log's
//! cap. Without NFLOG the rules still enforce; only the log misses the CIDR decisions.

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{
    ConfigCmd, ConfigMode, PacketNla, ULogMessage, config_request,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{Socket, constants::NETLINK_NETFILTER};

use super::log::{Decision, LOG, Verdict};
use crate::network::firewall::{LOG_ALLOWED, LOG_DENIED, LOG_ISOLATION};

/// Bytes of each packet copied: the IPv4 header and the ports.
const COPY: u32 = 64;
const RX_BUFFER: usize = 1 << 20;

static GROUP: OnceLock<Option<u16>> = OnceLock::new();
/// Messages the kernel dropped because the socket buffer was full.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The group being read, once [`start`] bound it.
pub fn group() -> Option<u16> {
    GROUP.get().copied().flatten()
}

/// Binds `group` and reads it on a thread of its own (once per process).
pub fn start(group: u16) {
    GROUP.get_or_init(|| match bind(group) {
        Ok(socket) => {
            let spawned = std::thread::Builder::new()
                .name("cove-nflog".into())
                .spawn(move || read(&socket));
            match spawned {
                Ok(_) => {
                    tracing::info!(group, "CIDR egress decisions are logged through NFLOG");
                    Some(group)
                }
                Err(e) => {
                    tracing::warn!(group, error = %e, "CIDR egress decisions are not logged (the rules still enforce)");
                    None
                }
            }
        }
        Err(e) => {
            tracing::warn!(group, error = %e, "NFLOG unavailable (nfnetlink_log / xt_NFLOG modules, or the group is taken): CIDR egress decisions are not logged (the rules still enforce)");
            None
        }
    });
}

fn request(
    socket: &Socket,
    group: u16,
    cmds: Vec<netlink_packet_netfilter::nflog::ConfigNla>,
) -> std::io::Result<()> {
    let msg = config_request(NetfilterProtoFamily::IPv4, group, cmds);
    let mut buf = vec![0; msg.header.length as usize];
    msg.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;
    let mut rx = vec![0u8; 4096];
    let n = socket.recv(&mut &mut rx[..], 0)?;
    let reply = <NetlinkMessage<NetfilterMessage>>::deserialize(&rx[..n])
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    match reply.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
        },
        _ => Ok(()),
    }
}

fn bind(group: u16) -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.set_rx_buf_sz(RX_BUFFER)?;
    request(
        &socket,
        group,
        vec![ConfigCmd::Bind.into(), ConfigMode::new_packet(COPY).into()],
    )?;
    Ok(socket)
}

fn read(socket: &Socket) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                let total = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    total,
                    "NFLOG: the kernel dropped decisions (socket buffer full)"
                );
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "NFLOG reader stopped: CIDR egress decisions are no longer logged");
                return;
            }
        };
        let mut off = 0;
        while off < n {
            let Ok(msg) = <NetlinkMessage<NetfilterMessage>>::deserialize(&buf[off..n]) else {
                break;
            };
            let len = msg.header.length as usize;
            if let Some(attempt) = attempt_of(&msg) {
                record(attempt);
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

/// One logged packet: verdict, source, destination, protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub allowed: bool,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub port: Option<u16>,
    pub proto: u8,
    /// Refused by the isolation rules (the host, other sandboxes, link-local), not a policy.
    pub isolation: bool,
}

fn attempt_of(msg: &NetlinkMessage<NetfilterMessage>) -> Option<Attempt> {
    let NetlinkPayload::InnerMessage(NetfilterMessage {
        inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
        ..
    }) = &msg.payload
    else {
        return None;
    };
    let mut prefix = None;
    let mut payload = None;
    for nla in nlas {
        match nla {
            PacketNla::Prefix(p) => prefix = p.to_str().ok(),
            PacketNla::Payload(p) => payload = Some(p.as_slice()),
            _ => {}
        }
    }
    let (allowed, isolation) = match prefix? {
        LOG_ALLOWED => (true, false),
        LOG_DENIED => (false, false),
        LOG_ISOLATION => (false, true),
        _ => return None,
    };
    parse_ipv4(payload?, allowed).map(|a| Attempt { isolation, ..a })
}

/// The addresses, protocol and (TCP, UDP, SCTP) destination port of an IPv4 packet's start.
pub fn parse_ipv4(p: &[u8], allowed: bool) -> Option<Attempt> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let proto = p[9];
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let port = match proto {
        6 | 17 | 132 => p
            .get(ihl + 2..ihl + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]])),
        _ => None,
    };
    Some(Attempt {
        allowed,
        src,
        dst,
        port,
        proto,
        isolation: false,
    })
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

fn record(a: Attempt) {
    let Some(sandbox) = crate::network::egress::sandbox_at(a.src) else {
        return;
    };
    let destination = match a.port {
        Some(port) => format!("{}:{port}", a.dst),
        None => a.dst.to_string(),
    };
    LOG.record(
        &sandbox,
        Decision {
            time: super::log::now(),
            destination,
            domain: None,
            verdict: if a.allowed {
                Verdict::Allowed
            } else {
                Verdict::Denied
            },
            reason: (!a.allowed).then(|| {
                let by = if a.isolation {
                    "the isolation rules"
                } else {
                    "the CIDR rules"
                };
                format!("{} refused by {by}", proto_name(a.proto))
            }),
            rule: Some(if a.isolation { "isolation" } else { "cidr" }.to_owned()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses_and_port_of_an_ipv4_packet() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[198, 51, 100, 7]);
        p[22..24].copy_from_slice(&443u16.to_be_bytes());
        let a = parse_ipv4(&p, false).expect("parsed");
        assert_eq!(a.src, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(a.dst, Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(a.port, Some(443));
        assert!(!a.allowed);
        p[9] = 1;
        assert_eq!(parse_ipv4(&p, true).expect("icmp").port, None);
        assert!(parse_ipv4(&p[..19], true).is_none());
        p[0] = 0x60;
        assert!(parse_ipv4(&p, true).is_none());
    }
}
