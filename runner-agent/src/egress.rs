//! The egress proxy of domain policies (`domainAllowList`, `domainDenyList`) and the decision
//! log of every sandbox.
//!
//! A sandbox whose policy has a domain list gets its outbound TCP 80 and 443 redirected by the
//! host's `nat` table (`REDIRECT`, see `network::firewall`) to [`proxy`], which the agent runs on
//! the sandbox bridge's gateway address. For each connection the proxy:
//! 1. finds the sandbox by its source address and the destination the sandbox asked for
//!    (`SO_ORIGINAL_DST`);
//! 2. reads the first bytes: a TLS ClientHello gives the server name (SNI, [`hello`]), plain
//!    HTTP the `Host` header; nothing is decrypted or terminated;
//! 3. decides ([`pattern`]): the deny-list wins, then with an allow-list the name must match it;
//!    a connection without a name (an IP literal, no SNI) is refused when an allow-list is set;
//! 4. pins the destination: the name is resolved by the agent ([`resolve`]; a hosts file first
//!    when configured) and the original destination must be one of its addresses, so a forged
//!    SNI or `Host` towards another address is refused; destinations the isolation rules forbid
//!    (link-local, local networks, the operator's deny ranges, the CIDR deny-list) are refused
//!    whatever the name resolves to;
//! 5. connects to the original destination, replays the bytes read and relays both ways.
//!
//! Every decision goes into the sandbox's bounded ring of [`log`].

pub mod hello;
pub mod log;
pub mod nflog;
pub mod pattern;
pub mod proxy;
pub mod resolve;
