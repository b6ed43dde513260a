//! The iptables rules of the sandbox bridge (see the parent module for what they do). The rules
//! are data ([`Firewall::rules`]) from which both the `iptables-restore` input and the
//! `iptables -C` checks are made, so what is checked is exactly what was written.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::NetworkError;

/// Link-local range (cloud metadata services live at 169.254.169.254).
const LINK_LOCAL: &str = "169.254.0.0/16";
const REJECT: [&str; 4] = ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"];

/// One rule: `-A <chain> <args>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `filter` or `nat`.
    pub table: &'static str,
    pub chain: String,
    pub args: Vec<String>,
}

impl Rule {
    fn new(chain: &str, args: &[&str]) -> Self {
        Self {
            table: "filter",
            chain: chain.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn nat(chain: &str, args: &[&str]) -> Self {
        Self {
            table: "nat",
            ..Self::new(chain, args)
        }
    }

    /// `-t <table> <op> <chain> <args>` as arguments of `iptables`.
    fn command<'a>(&'a self, op: &'a str) -> Vec<&'a str> {
        let mut v = vec!["-t", self.table, op, self.chain.as_str()];
        v.extend(self.args.iter().map(String::as_str));
        v
    }

    /// As `iptables -S` prints it.
    fn line(&self) -> String {
        format!("-A {} {}", self.chain, self.args.join(" "))
    }
}

/// The rules of one sandbox bridge.
#[derive(Debug, Clone)]
pub struct Firewall {
    bridge: String,
    /// IPv4 subnets of the local Docker networks.
    subnets: Vec<ipnet::Ipv4Net>,
    deny: Vec<ipnet::Ipv4Net>,
    /// The host's DNS servers: Docker's embedded DNS forwards to them from the sandbox's
    /// network namespace, so their port 53 stays open even when local or link-local.
    resolvers: Vec<std::net::Ipv4Addr>,
    /// The sandboxes' own egress policies (`egress`).
    policies: Vec<super::egress::Entry>,
    /// Port of the agent's egress proxy on this host (`crate::egress`), when it runs.
    proxy_port: Option<u16>,
    /// NFLOG group the policy chains log their decisions to, when the agent reads it.
    nflog: Option<u16>,
}

impl Firewall {
    pub fn new(bridge: &str, subnets: Vec<ipnet::Ipv4Net>, deny: Vec<ipnet::Ipv4Net>) -> Self {
        Self {
            bridge: bridge.to_owned(),
            subnets,
            deny,
            resolvers: Vec::new(),
            policies: Vec::new(),
            proxy_port: None,
            nflog: None,
        }
    }

    /// Lets connections redirected to the egress proxy on `port` in (see [`Self::nat_rules`]).
    pub fn with_proxy(mut self, port: Option<u16>) -> Self {
        self.proxy_port = port;
        self
    }

    /// Logs each new connection's verdict in the policy chains to NFLOG `group`.
    pub fn with_nflog(mut self, group: Option<u16>) -> Self {
        self.nflog = group;
        self
    }

    pub fn nat_chain(&self) -> String {
        format!("COVE-NAT-{}", self.bridge)
    }

    /// The `nat` chain: TCP 80 and 443 of the sandboxes with a domain list go to the proxy
    /// (`REDIRECT` to the bridge's own address), before Docker's rules see them.
    pub fn nat_rules(&self) -> Vec<Rule> {
        let Some(port) = self.proxy_port else {
            return Vec::new();
        };
        let (chain, port) = (self.nat_chain(), port.to_string());
        self.policies
            .iter()
            .filter(|e| e.policy.proxied())
            .map(|e| {
                let src = format!("{}/32", e.ip);
                Rule::nat(
                    &chain,
                    &[
                        "-s",
                        &src,
                        "-p",
                        "tcp",
                        "-m",
                        "multiport",
                        "--dports",
                        "80,443",
                        "-j",
                        "REDIRECT",
                        "--to-ports",
                        &port,
                    ],
                )
            })
            .collect()
    }

    /// Adds the sandboxes' egress policies (one chain each, see `egress`).
    pub fn with_policies(mut self, policies: Vec<super::egress::Entry>) -> Self {
        self.policies = policies;
        self
    }

    /// Jumps from the forward chain (after the isolation rules) and the policy chains.
    fn policy_rules(&self) -> Vec<Rule> {
        let fwd = self.forward_chain();
        let mut rules = Vec::new();
        for e in &self.policies {
            let src = format!("{}/32", e.ip);
            rules.push(Rule::new(&fwd, &["-s", &src, "-j", &e.chain]));
        }
        for e in &self.policies {
            rules.extend(policy_chain(e, self.nflog));
        }
        rules
    }

    /// `-N CS-<bridge>-` names of policy chains this firewall does not declare.
    fn stale_chains(&self, listing: &str) -> Vec<String> {
        let prefix = format!("CS-{}-", self.bridge);
        listing
            .lines()
            .filter_map(|l| l.trim().strip_prefix("-N "))
            .filter(|c| c.starts_with(&prefix) && c.len() == prefix.len() + 8)
            .filter(|c| !self.policies.iter().any(|e| e.chain == *c))
            .map(str::to_owned)
            .collect()
    }

    /// Keeps DNS (port 53) to `resolvers` open.
    pub fn with_resolvers(mut self, resolvers: Vec<std::net::Ipv4Addr>) -> Self {
        self.resolvers = resolvers;
        self
    }

    /// `RETURN` for DNS to each resolver, in `chain`.
    fn dns_rules(&self, chain: &str) -> Vec<Rule> {
        let mut rules = Vec::new();
        for ns in &self.resolvers {
            let ns = ns.to_string();
            for proto in ["udp", "tcp"] {
                rules.push(Rule::new(
                    chain,
                    &["-d", &ns, "-p", proto, "--dport", "53", "-j", "RETURN"],
                ));
            }
        }
        rules
    }

    pub fn input_chain(&self) -> String {
        format!("COVE-IN-{}", self.bridge)
    }

    pub fn forward_chain(&self) -> String {
        format!("COVE-FWD-{}", self.bridge)
    }

    /// The rules of the two chains, in order.
    pub fn rules(&self) -> Vec<Rule> {
        let input = self.input_chain();
        let fwd = self.forward_chain();
        let reject = |chain: &str, mut args: Vec<&str>| {
            args.extend(REJECT);
            Rule::new(chain, &args)
        };
        // With NFLOG, each isolation refusal is preceded by the same match logging new
        // connections (prefix `cove-i`), so a sandbox's log shows what the isolation refused.
        let logged =
            |chain: &str, args: &[&str]| nflog_rule(self.nflog, chain, args, LOG_ISOLATION);
        let mut rules = vec![Rule::new(
            &input,
            &[
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "RETURN",
            ],
        )];
        rules.extend(self.dns_rules(&input));
        if let Some(port) = self.proxy_port {
            // Only connections the nat chain redirected: a direct one is not DNAT'd.
            let port = port.to_string();
            rules.push(Rule::new(
                &input,
                &[
                    "-p",
                    "tcp",
                    "--dport",
                    &port,
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "DNAT",
                    "-j",
                    "RETURN",
                ],
            ));
        }
        rules.extend(logged(&input, &[]));
        rules.push(Rule::new(
            &input,
            &["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ));
        rules.push(reject(&input, vec![]));
        rules.extend(self.dns_rules(&fwd));
        for m in [
            ["-o", self.bridge.as_str()],
            ["-o", "docker0"],
            ["-o", "br-+"],
            ["-d", LINK_LOCAL],
        ] {
            rules.extend(logged(&fwd, &m));
            rules.push(reject(&fwd, m.to_vec()));
        }
        let mut nets: Vec<String> = self
            .subnets
            .iter()
            .chain(&self.deny)
            .map(|n| n.trunc().to_string())
            .collect();
        nets.sort();
        nets.dedup();
        for net in &nets {
            rules.extend(logged(&fwd, &["-d", net]));
            rules.push(reject(&fwd, vec!["-d", net]));
        }
        rules.extend(self.policy_rules());
        rules
    }

    /// The two jumps: (parent chain, rule). `forward_parent` is `DOCKER-USER` when it exists.
    pub fn jumps(&self, forward_parent: &str) -> Vec<Rule> {
        vec![
            Rule::new("INPUT", &["-i", &self.bridge, "-j", &self.input_chain()]),
            Rule::new(
                forward_parent,
                &["-i", &self.bridge, "-j", &self.forward_chain()],
            ),
            Rule::nat("PREROUTING", &["-i", &self.bridge, "-j", &self.nat_chain()]),
        ]
    }

    /// `iptables-restore --noflush` input: declaring a chain creates or empties it, so the two
    /// chains are replaced in one transaction and nothing else is touched.
    pub fn restore_input(&self) -> String {
        let mut s = String::from("*filter\n");
        let policy_chains = self.policies.iter().map(|e| e.chain.clone());
        for chain in [self.input_chain(), self.forward_chain()]
            .into_iter()
            .chain(policy_chains)
        {
            s.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for rule in self.rules() {
            s.push_str(&rule.line());
            s.push('\n');
        }
        s.push_str("COMMIT\n*nat\n");
        s.push_str(&format!(":{} - [0:0]\n", self.nat_chain()));
        for rule in self.nat_rules() {
            s.push_str(&rule.line());
            s.push('\n');
        }
        s.push_str("COMMIT\n");
        s
    }

    /// Writes the chains, keeps each jump exactly once, checks every rule, and sets the
    /// bridge's kernel settings.
    pub async fn apply(&self) -> Result<(), NetworkError> {
        self.write().await?;
        let parent = if iptables(&["-S", "DOCKER-USER"]).await.is_ok() {
            "DOCKER-USER"
        } else {
            "FORWARD"
        };
        let jumps = self.jumps(parent);
        for jump in &jumps {
            ensure_once(jump).await?;
        }
        let nat = self.nat_rules();
        for rule in self.rules().iter().chain(&nat).chain(&jumps) {
            iptables(&rule.command("-C"))
                .await
                .map_err(|_| NetworkError::Missing(rule.line()))?;
        }
        self.kernel_settings()
    }

    /// Replaces the chains in one transaction, then empties and deletes the policy chains of
    /// sandboxes that have none any more (nothing jumps to them after the write).
    pub async fn write(&self) -> Result<(), NetworkError> {
        restore(&self.restore_input()).await?;
        let listing = iptables(&["-S"]).await?;
        for chain in self.stale_chains(&listing) {
            let deleted = match iptables(&["-F", &chain]).await {
                Ok(_) => iptables(&["-X", &chain]).await,
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                tracing::warn!(%chain, error = %e, "could not delete a stale egress chain");
            }
        }
        Ok(())
    }

    fn kernel_settings(&self) -> Result<(), NetworkError> {
        let v6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.bridge);
        if std::path::Path::new(&v6).exists() {
            ensure_sysctl(&v6, "1")?;
        }
        ensure_sysctl("/proc/sys/net/bridge/bridge-nf-call-iptables", "1")
    }
}

/// NFLOG prefixes of the two verdicts (read back by `crate::egress::nflog`).
pub const LOG_ALLOWED: &str = "cove-a";
pub const LOG_DENIED: &str = "cove-d";
/// NFLOG prefix of the isolation rules' refusals (the host, other sandboxes, link-local).
pub const LOG_ISOLATION: &str = "cove-i";

/// `<args> -m conntrack --ctstate NEW -j NFLOG` with `prefix` to `group` in `chain`: logs the new
/// connections the rule after it (same `args`) decides. `None` without a group.
fn nflog_rule(group: Option<u16>, chain: &str, args: &[&str], prefix: &str) -> Option<Rule> {
    let g = group?.to_string();
    let mut a = args.to_vec();
    a.extend([
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-j",
        "NFLOG",
        "--nflog-prefix",
        prefix,
        "--nflog-group",
        &g,
    ]);
    Some(Rule::new(chain, &a))
}

/// The rules of one sandbox's policy chain. With `nflog`, each verdict rule is preceded by the
/// same match logging new connections with that verdict, so what is logged is what is done.
fn policy_chain(e: &super::egress::Entry, nflog: Option<u16>) -> Vec<Rule> {
    let c = e.chain.as_str();
    let log = |dst: &[&str], prefix: &str| nflog_rule(nflog, c, dst, prefix);
    let refuse = |dst: Option<&str>| {
        let d: Vec<&str> = dst.map(|d| vec!["-d", d]).unwrap_or_default();
        let mut tcp = d.clone();
        tcp.extend(["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]);
        let logged = log(&d, LOG_DENIED);
        let mut any = d;
        any.extend(REJECT);
        logged
            .into_iter()
            .chain([Rule::new(c, &tcp), Rule::new(c, &any)])
    };
    // Replies of connections opened towards the sandbox (the host's, published ports).
    let mut rules = vec![Rule::new(
        c,
        &["-m", "conntrack", "--ctdir", "REPLY", "-j", "RETURN"],
    )];
    let p = &e.policy;
    for net in &p.deny {
        rules.extend(refuse(Some(&net.to_string())));
    }
    if p.block_all {
        rules.extend(refuse(None));
    } else if p.default_deny() {
        for net in &p.allow {
            let net = net.to_string();
            rules.extend(log(&["-d", &net], LOG_ALLOWED));
            rules.push(Rule::new(c, &["-d", &net, "-j", "RETURN"]));
        }
        rules.extend(refuse(None));
    } else {
        // A deny-list: the rest goes on (the chain's end returns).
        rules.extend(log(&[], LOG_ALLOWED));
    }
    rules
}

/// IPv4 `nameserver`s of a resolv.conf, loopback ones left out (Docker does not use them).
pub fn resolvers(resolv_conf: &str) -> Vec<std::net::Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<std::net::Ipv4Addr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// Sets a sysctl when it differs and reads it back.
fn ensure_sysctl(path: &str, want: &str) -> Result<(), NetworkError> {
    let err = |why: String| NetworkError::Sysctl {
        path: path.to_owned(),
        why,
    };
    let read = || std::fs::read_to_string(path).map(|s| s.trim().to_owned());
    let now = read().map_err(|e| err(format!("{e} (is the br_netfilter module loaded?)")))?;
    if now != want {
        std::fs::write(path, want).map_err(|e| err(format!("cannot set it to {want}: {e}")))?;
    }
    match read() {
        Ok(v) if v == want => Ok(()),
        Ok(v) => Err(err(format!("is {v}, want {want}"))),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The jump present once: inserted first when missing, duplicates removed.
async fn ensure_once(jump: &Rule) -> Result<(), NetworkError> {
    let listing = iptables(&["-t", jump.table, "-S", &jump.chain]).await?;
    let line = jump.line();
    let count = listing.lines().filter(|l| l.trim() == line).count();
    if count == 0 {
        let mut insert = vec!["-t", jump.table, "-I", jump.chain.as_str(), "1"];
        insert.extend(jump.args.iter().map(String::as_str));
        iptables(&insert).await?;
        tracing::info!(rule = %line, "inserted the sandbox isolation jump");
    }
    for _ in 1..count {
        iptables(&jump.command("-D")).await?;
    }
    Ok(())
}

/// `iptables -w ARGS`; stdout on success.
async fn iptables(args: &[&str]) -> Result<String, NetworkError> {
    let mut cmd = tokio::process::Command::new("iptables");
    cmd.arg("-w").args(args);
    run(cmd, &format!("iptables {}", args.join(" ")), None).await
}

async fn restore(input: &str) -> Result<(), NetworkError> {
    let mut cmd = tokio::process::Command::new("iptables-restore");
    cmd.args(["-w", "--noflush"]);
    run(cmd, "iptables-restore --noflush", Some(input))
        .await
        .map(drop)
}

async fn run(
    mut cmd: tokio::process::Command,
    shown: &str,
    stdin: Option<&str>,
) -> Result<String, NetworkError> {
    let spawn_err = |source| NetworkError::Spawn {
        cmd: shown.to_owned(),
        source,
    };
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(spawn_err)?;
    }
    let out = child.wait_with_output().await.map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetworkError::Command {
            cmd: shown.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw() -> Firewall {
        let nets = vec![
            "172.17.0.0/16".parse().expect("net"),
            "172.18.0.0/16".parse().expect("net"),
            "172.17.0.0/16".parse().expect("net"),
        ];
        Firewall::new("cove0", nets, vec!["10.0.0.5/8".parse().expect("net")])
    }

    #[test]
    fn input_chain_passes_only_replies() {
        let rules = fw().rules();
        let input: Vec<String> = rules
            .iter()
            .filter(|r| r.chain == "COVE-IN-cove0")
            .map(Rule::line)
            .collect();
        assert_eq!(
            input,
            [
                "-A COVE-IN-cove0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                "-A COVE-IN-cove0 -p tcp -j REJECT --reject-with tcp-reset",
                "-A COVE-IN-cove0 -j REJECT --reject-with icmp-admin-prohibited",
            ]
        );
    }

    #[test]
    fn forward_chain_rejects_local_destinations() {
        let lines: Vec<String> = fw()
            .rules()
            .iter()
            .filter(|r| r.chain == "COVE-FWD-cove0")
            .map(Rule::line)
            .collect();
        let r = "-j REJECT --reject-with icmp-admin-prohibited";
        assert_eq!(
            lines,
            [
                format!("-A COVE-FWD-cove0 -o cove0 {r}"),
                format!("-A COVE-FWD-cove0 -o docker0 {r}"),
                format!("-A COVE-FWD-cove0 -o br-+ {r}"),
                format!("-A COVE-FWD-cove0 -d 169.254.0.0/16 {r}"),
                // deny ranges are truncated to their network, subnets deduplicated
                format!("-A COVE-FWD-cove0 -d 10.0.0.0/8 {r}"),
                format!("-A COVE-FWD-cove0 -d 172.17.0.0/16 {r}"),
                format!("-A COVE-FWD-cove0 -d 172.18.0.0/16 {r}"),
            ]
        );
        // No rule accepts: what is not rejected returns to Docker's chains.
        assert!(
            fw().rules()
                .iter()
                .all(|r| !r.args.contains(&"ACCEPT".to_owned()))
        );
    }

    #[test]
    fn restore_input_replaces_both_chains() {
        let text = fw().restore_input();
        assert!(text.starts_with("*filter\n:COVE-IN-cove0 - [0:0]\n:COVE-FWD-cove0 - [0:0]\n"));
        assert!(text.ends_with("COMMIT\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("-A ")).count(), 10);
        assert!(
            text.lines()
                .all(|l| l.starts_with(['*', ':']) || l.starts_with("-A COVE-") || l == "COMMIT"),
            "touches only its chains: {text}"
        );
    }

    #[test]
    fn dns_to_the_host_resolvers_stays_open() {
        let conf = "# generated\nnameserver 169.254.169.254\nnameserver 127.0.0.53\nnameserver ::1\nsearch x\n";
        let ns = resolvers(conf);
        assert_eq!(
            ns,
            ["169.254.169.254".parse::<std::net::Ipv4Addr>().expect("ip")]
        );
        let lines: Vec<String> = fw()
            .with_resolvers(ns)
            .rules()
            .iter()
            .map(Rule::line)
            .collect();
        let dns = |chain: &str, proto: &str| {
            format!("-A {chain} -d 169.254.169.254 -p {proto} --dport 53 -j RETURN")
        };
        let pos = |l: &str| lines.iter().position(|x| x == l).unwrap_or(usize::MAX);
        for chain in ["COVE-IN-cove0", "COVE-FWD-cove0"] {
            for proto in ["udp", "tcp"] {
                assert!(
                    pos(&dns(chain, proto)) < lines.len(),
                    "{chain} {proto}: {lines:#?}"
                );
            }
        }
        // Before the rejects that would catch them.
        assert!(
            pos(&dns("COVE-IN-cove0", "tcp"))
                < pos("-A COVE-IN-cove0 -p tcp -j REJECT --reject-with tcp-reset")
        );
        assert!(
            pos(&dns("COVE-FWD-cove0", "udp"))
                < pos(
                    "-A COVE-FWD-cove0 -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited"
                )
        );
    }

    #[test]
    fn jumps_hang_under_the_given_parent() {
        let j = fw().jumps("DOCKER-USER");
        assert_eq!(j[0].line(), "-A INPUT -i cove0 -j COVE-IN-cove0");
        assert_eq!(j[1].line(), "-A DOCKER-USER -i cove0 -j COVE-FWD-cove0");
    }
}
