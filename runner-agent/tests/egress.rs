//! Egress policies against real Docker and iptables (issue 16): a CIDR allow-list reaches the
//! allowed test host only (the other is refused at once), a deny-list refuses what it lists,
//! the isolation rules win over a list (link-local stays denied), a running sandbox's policy
//! changes within a second without a restart (allowed → denied → allowed, then block-all), the
//! default stays unrestricted, a policy the agent cannot apply leaves the sandbox stopped in
//! `error`, and a destroyed sandbox's chain goes. The "internet" is two addresses the test puts
//! in its own network namespace; no traffic goes anywhere else.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, image, sid, wait_until};
use cove_runner_api::{EgressPolicy, EgressVerdict, SandboxSpec, SandboxState};

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("running sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn must(cmd: &str) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "`{cmd}` failed: {out}");
    out.trim().to_owned()
}

fn rand_hex(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_owned()
}

/// The agent's own sandbox network; removes its jumps, chains and the Docker network on drop.
struct NetGuard {
    name: String,
    bridge: String,
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        let b = &self.bridge;
        while sh(&format!(
            "iptables -w -t nat -D PREROUTING -i {b} -j COVE-NAT-{b}"
        ))
        .0
        {}
        sh(&format!(
            "iptables -w -t nat -F COVE-NAT-{b}; iptables -w -t nat -X COVE-NAT-{b}"
        ));
        for (chain, target) in [("INPUT", "COVE-IN"), ("DOCKER-USER", "COVE-FWD")] {
            while sh(&format!("iptables -w -D {chain} -i {b} -j {target}-{b}")).0 {}
        }
        sh(&format!("iptables -w -F COVE-FWD-{b}"));
        let (_, listing) = sh("iptables -w -S");
        for line in listing.lines() {
            if let Some(chain) = line.strip_prefix(&format!("-N CS-{b}-")) {
                sh(&format!(
                    "iptables -w -F CS-{b}-{chain}; iptables -w -X CS-{b}-{chain}"
                ));
            }
        }
        for chain in ["COVE-IN", "COVE-FWD"] {
            sh(&format!(
                "iptables -w -F {chain}-{b}; iptables -w -X {chain}-{b}"
            ));
        }
        sh(&format!("docker network rm {}", self.name));
    }
}

/// A network namespace standing for the internet, holding two "public" test hosts (TEST-NET-2)
/// and a link-local address, with an HTTP server on all of them.
struct Internet {
    ns: String,
    server: Option<Child>,
    allowed: String,
    other: String,
    link_local: String,
    port: u16,
}

impl Internet {
    fn start() -> Internet {
        let tag = rand_hex(6);
        let ns = format!("cveg-{tag}");
        let (host_if, ns_if) = (format!("cvh{tag}"), format!("cvn{tag}"));
        let x = common::test_net_block();
        let (host_ip, ns_ip) = (
            format!("203.0.113.{}", x + 1),
            format!("203.0.113.{}", x + 2),
        );
        // 198.51.100.128..=253 (the network tests use 1..=63 of it)
        let y = x / 4;
        let allowed = format!("198.51.100.{}", 128 + 2 * y);
        let other = format!("198.51.100.{}", 129 + 2 * y);
        let link_local = format!("169.254.78.{}", 1 + y);
        let mut me = Internet {
            ns: ns.clone(),
            server: None,
            allowed: allowed.clone(),
            other: other.clone(),
            link_local: link_local.clone(),
            port: 19000 + u16::from(x),
        };
        let mut setup = format!(
            "ip netns add {ns} && ip link add {host_if} type veth peer name {ns_if} \
             && ip link set {ns_if} netns {ns} && ip addr add {host_ip}/30 dev {host_if} \
             && ip link set {host_if} up && ip -n {ns} link set lo up \
             && ip -n {ns} addr add {ns_ip}/30 dev {ns_if} && ip -n {ns} link set {ns_if} up \
             && ip -n {ns} route add default via {host_ip}"
        );
        for a in [&allowed, &other, &link_local] {
            setup.push_str(&format!(
                " && ip -n {ns} addr add {a}/32 dev {ns_if} && ip route add {a}/32 via {ns_ip}"
            ));
        }
        must(&setup);
        let dir = std::env::temp_dir().join(format!("{ns}-www"));
        std::fs::create_dir_all(&dir).expect("www dir");
        std::fs::write(dir.join("hello.txt"), "hello from the internet\n").expect("page");
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server"])
            .arg(me.port.to_string())
            .args(["--bind", "0.0.0.0", "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server in the namespace");
        me.server = Some(server);
        me
    }

    fn url(&self, addr: &str) -> String {
        format!("http://{addr}:{}/hello.txt", self.port)
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        sh(&format!("ip netns del {}", self.ns));
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{}-www", self.ns)));
    }
}

/// Fetches `url` from inside a sandbox: (reached, how long it took, output).
async fn fetch_in(agent: &Agent, id: &str, url: &str) -> (bool, Duration, String) {
    let script = format!(
        "import urllib.request,sys,time\nt=time.time()\ntry:\n    print(urllib.request.urlopen('{url}', timeout=5).read().decode().strip())\nexcept Exception as e:\n    print('FAIL', e); print('after', time.time()-t); sys.exit(3)\nprint('after', time.time()-t)"
    );
    let (code, out) = agent.exec(id, &format!("python3 -c \"{script}\"")).await;
    let took = out
        .lines()
        .find_map(|l| l.strip_prefix("after "))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map_or(Duration::MAX, Duration::from_secs_f64);
    (code == 0, took, out)
}

fn policy(allow: &[&str], deny: &[&str]) -> EgressPolicy {
    EgressPolicy {
        block_all: false,
        allow: allow.iter().map(|s| (*s).to_owned()).collect(),
        deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        ..EgressPolicy::default()
    }
}

/// Puts generation `generation` of `id` with `egress`; how long the agent took.
async fn change(agent: &Agent, id: &str, generation: u64, egress: EgressPolicy) -> Duration {
    let mut spec = SandboxSpec::new(image());
    spec.generation = generation;
    spec.egress = egress;
    let t = Instant::now();
    let s = agent.client.put_sandbox(id, &spec).await.expect("put");
    assert_eq!(s.state, SandboxState::Started, "{s:?}");
    t.elapsed()
}

async fn assert_reach(agent: &Agent, id: &str, url: &str, want: bool, what: &str) {
    let (reached, took, out) = fetch_in(agent, id, url).await;
    assert_eq!(reached, want, "{what}: {out}");
    if !want {
        assert!(
            took < Duration::from_secs(2),
            "{what}: refused only after {took:?}"
        );
    }
}

/// Waits (NFLOG is asynchronous) until `id`'s network log holds a CIDR decision on `dest`.
async fn assert_logged(agent: &Agent, id: &str, dest: &str, verdict: EgressVerdict) {
    assert_logged_by(agent, id, dest, verdict, "cidr").await;
}

/// Waits until `id`'s network log holds a decision of `rule` on `dest`.
async fn assert_logged_by(agent: &Agent, id: &str, dest: &str, verdict: EgressVerdict, rule: &str) {
    let found = || async {
        let log = agent.client.network_log(id).await.expect("network log");
        log.entries.iter().any(|e| {
            e.destination == dest && e.verdict == verdict && e.rule.as_deref() == Some(rule)
        })
    };
    for _ in 0..50 {
        if found().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = agent.client.network_log(id).await.expect("network log");
    panic!("{id}: no {verdict:?} {rule} decision on {dest}: {log:#?}");
}

fn policy_chains(bridge: &str) -> usize {
    must("iptables -w -S")
        .lines()
        .filter(|l| l.starts_with(&format!("-N CS-{bridge}-")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_policies_are_enforced_and_change_at_run_time() {
    let tag = rand_hex(6);
    let net = NetGuard {
        name: format!("cove-egress-{tag}"),
        bridge: format!("cve{tag}"),
    };
    let inet = Internet::start();
    // A group of its own: one process reads a group, and other agents may run meanwhile.
    let group = (20_000 + u32::from_str_radix(&tag[..4], 16).expect("hex") % 40_000).to_string();
    let agent = Agent::start(&[
        "--sandbox-network",
        &net.name,
        "--sandbox-bridge",
        &net.bridge,
        "--isolation-check-secs",
        "1",
        "--egress-nflog-group",
        &group,
    ]);
    let (allowed, other, ll) = (
        inet.url(&inet.allowed),
        inet.url(&inet.other),
        inet.url(&inet.link_local),
    );
    let (a, d, open) = (sid("ega"), sid("egd"), sid("ego"));
    let listed = [inet.allowed.as_str(), inet.link_local.as_str()];
    agent.sandbox(&a, |s| s.egress = policy(&listed, &[])).await;
    let deny = format!("{}/32", inet.other);
    agent
        .sandbox(&d, |s| s.egress = policy(&[], &[&deny]))
        .await;
    agent.sandbox(&open, |_| {}).await;
    wait_until("the test hosts", Duration::from_secs(20), || async {
        reqwest::get(&other).await.is_ok()
    })
    .await;

    // Default: unrestricted (beyond the isolation).
    assert_reach(&agent, &open, &allowed, true, "default → allowed host").await;
    assert_reach(&agent, &open, &other, true, "default → other host").await;
    // Allow-list: the listed host only, refused at once; link-local stays denied though listed.
    assert_reach(&agent, &a, &allowed, true, "allow-list → listed host").await;
    assert_reach(&agent, &a, &other, false, "allow-list → other host").await;
    assert_reach(&agent, &a, &ll, false, "allow-list → listed link-local").await;
    // Deny-list: everything but the listed host.
    assert_reach(&agent, &d, &allowed, true, "deny-list → unlisted host").await;
    assert_reach(&agent, &d, &other, false, "deny-list → listed host").await;
    assert_eq!(policy_chains(&net.bridge), 2);
    assert!(
        must("iptables -w -S").contains(&format!("--nflog-group {group}")),
        "the policy chains log to NFLOG"
    );
    // The CIDR rules' decisions are in the sandboxes' network logs.
    let (to_allowed, to_other) = (
        format!("{}:{}", inet.allowed, inet.port),
        format!("{}:{}", inet.other, inet.port),
    );
    assert_logged(&agent, &a, &to_allowed, EgressVerdict::Allowed).await;
    assert_logged(&agent, &a, &to_other, EgressVerdict::Denied).await;
    assert_logged(&agent, &d, &to_allowed, EgressVerdict::Allowed).await;
    assert_logged(&agent, &d, &to_other, EgressVerdict::Denied).await;
    // The isolation rules' refusals are logged as theirs, with a policy (the listed link-local
    // address) or without one; what nothing refused (the unrestricted sandbox's) is not logged.
    let to_ll = format!("{}:{}", inet.link_local, inet.port);
    assert_logged_by(&agent, &a, &to_ll, EgressVerdict::Denied, "isolation").await;
    assert_reach(&agent, &open, &ll, false, "default → link-local").await;
    assert_logged_by(&agent, &open, &to_ll, EgressVerdict::Denied, "isolation").await;
    let open_log = agent.client.network_log(&open).await.expect("log");
    assert!(
        open_log
            .entries
            .iter()
            .all(|e| e.destination == to_ll && e.rule.as_deref() == Some("isolation")),
        "{open_log:#?}"
    );

    // The periodic re-assertion (every second here) keeps the policy chains.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_reach(&agent, &a, &other, false, "allow-list after re-assertion").await;

    // Run-time changes of the open sandbox, applied without a restart.
    let pid = must(&format!(
        "docker inspect -f '{{{{.State.Pid}}}}' cove-sb-{open}"
    ));
    let took = change(&agent, &open, 2, policy(&[], &[&inet.allowed])).await;
    assert!(took < Duration::from_secs(1), "the change took {took:?}");
    assert_reach(&agent, &open, &allowed, false, "allowed → denied").await;
    assert_reach(&agent, &open, &other, true, "denied only the listed host").await;
    let took = change(&agent, &open, 3, EgressPolicy::default()).await;
    assert!(took < Duration::from_secs(1), "the change took {took:?}");
    assert_reach(&agent, &open, &allowed, true, "denied → allowed").await;
    let blocked = EgressPolicy {
        block_all: true,
        ..EgressPolicy::default()
    };
    change(&agent, &open, 4, blocked).await;
    assert_reach(&agent, &open, &allowed, false, "block-all → allowed host").await;
    assert_reach(&agent, &open, &other, false, "block-all → other host").await;
    assert_logged(&agent, &open, &to_other, EgressVerdict::Denied).await;
    let same_pid = must(&format!(
        "docker inspect -f '{{{{.State.Pid}}}}' cove-sb-{open}"
    ));
    assert_eq!(pid, same_pid, "the sandbox was restarted");

    // A policy the agent cannot apply: the sandbox is stopped in `error`, never left open.
    let bad = sid("egb");
    let mut spec = SandboxSpec::new(image());
    spec.egress = policy(&["not-a-cidr"], &[]);
    let put = agent.client.put_sandbox(&bad, &spec).await;
    assert!(put.is_err(), "{put:?}");
    let status = agent.client.get_sandbox(&bad).await.expect("status");
    assert_eq!(status.state, SandboxState::Error, "{status:?}");
    let reason = status.error_reason.unwrap_or_default();
    assert!(reason.contains("egress policy"), "{reason}");
    assert_eq!(
        must(&format!(
            "docker inspect -f '{{{{.State.Running}}}}' cove-sb-{bad}"
        )),
        "false"
    );

    // Destroyed sandboxes leave no chain behind.
    for id in [&a, &d, &open, &bad] {
        agent.client.destroy_sandbox(id).await.expect("delete");
    }
    assert_eq!(policy_chains(&net.bridge), 0);
    drop(agent);
    drop(inet);
    drop(net);
}

/// HTTPS (443, a self-signed certificate) and HTTP (80) servers on every address of `inet`'s
/// namespace, answering `hello from the internet` whatever the name asked for.
fn serve_tls(inet: &Internet) -> Child {
    let dir = std::env::temp_dir().join(format!("{}-www", inet.ns));
    must(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=allowed.test \
         -keyout {d}/key.pem -out {d}/cert.pem",
        d = dir.display()
    ));
    let script = format!(
        "import http.server,ssl,threading,os\nos.chdir('{d}')\nH=http.server.SimpleHTTPRequestHandler\n\
         s=http.server.ThreadingHTTPServer(('0.0.0.0',443),H)\nc=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         c.load_cert_chain('cert.pem','key.pem')\ns.socket=c.wrap_socket(s.socket,server_side=True)\n\
         threading.Thread(target=s.serve_forever,daemon=True).start()\n\
         http.server.ThreadingHTTPServer(('0.0.0.0',80),H).serve_forever()\n",
        d = dir.display()
    );
    Command::new("ip")
        .args(["netns", "exec", &inet.ns, "python3", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("TLS server in the namespace")
}

/// Connects from inside a sandbox to `ip:port` (as `curl --resolve name:port:ip`), TLS on 443
/// with SNI `sni` (none when empty or an IP), `Host: sni` on 80: (reached, output).
async fn get_named(agent: &Agent, id: &str, ip: &str, port: u16, sni: &str) -> (bool, String) {
    let script = format!(
        "import socket,ssl,sys\nn='{sni}'\ntry:\n    s=socket.create_connection(('{ip}',{port}),timeout=5)\n    if {port}==443:\n        c=ssl.create_default_context(); c.check_hostname=False; c.verify_mode=ssl.CERT_NONE\n        s=c.wrap_socket(s,server_hostname=n or None)\n    s.sendall(('GET /hello.txt HTTP/1.0'+chr(13)+chr(10)+'Host: '+(n or '{ip}')+chr(13)+chr(10)+chr(13)+chr(10)).encode())\n    d=b''\n    while True:\n        b=s.recv(4096)\n        if not b: break\n        d+=b\n    print(d.decode(errors='replace'))\n    sys.exit(0 if b'hello from the internet' in d else 3)\nexcept Exception as e:\n    print('FAIL', e); sys.exit(3)\n"
    );
    let (code, out) = agent.exec(id, &format!("python3 -c \"{script}\"")).await;
    (code == 0, out)
}

fn domains(allow: &[&str], deny: &[&str]) -> EgressPolicy {
    EgressPolicy {
        domain_allow: allow.iter().map(|s| (*s).to_owned()).collect(),
        domain_deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        ..EgressPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_policies_are_decided_on_sni_and_host_and_logged() {
    let tag = rand_hex(6);
    let net = NetGuard {
        name: format!("cove-egdom-{tag}"),
        bridge: format!("cvd{tag}"),
    };
    let inet = Internet::start();
    let mut tls = serve_tls(&inet);
    let hosts = std::env::temp_dir().join(format!("{}-hosts", inet.ns));
    std::fs::write(
        &hosts,
        format!(
            "{} allowed.test www.wild.test\n{} denied.test\n",
            inet.allowed, inet.other
        ),
    )
    .expect("hosts file");
    let hosts_arg = hosts.display().to_string();
    let agent = Agent::start(&[
        "--sandbox-network",
        &net.name,
        "--sandbox-bridge",
        &net.bridge,
        "--egress-hosts",
        &hosts_arg,
    ]);
    let (a, d) = (sid("egn"), sid("egm"));
    agent
        .sandbox(&a, |s| {
            s.egress = domains(&["allowed.test", "*.wild.test"], &[])
        })
        .await;
    agent
        .sandbox(&d, |s| s.egress = domains(&[], &["denied.test"]))
        .await;
    let (ok_ip, other_ip) = (inet.allowed.as_str(), inet.other.as_str());
    wait_until("the TLS test host", Duration::from_secs(20), || async {
        get_named(&agent, &a, ok_ip, 443, "allowed.test").await.0
    })
    .await;

    // Allow-list: the listed names at their own addresses, over TLS and HTTP.
    for (ip, port, sni, want, what) in [
        (ok_ip, 443, "allowed.test", true, "https://allowed.test"),
        (ok_ip, 80, "allowed.test", true, "http://allowed.test"),
        (ok_ip, 443, "www.wild.test", true, "a *. wildcard"),
        (other_ip, 443, "denied.test", false, "https://denied.test"),
        (
            other_ip,
            443,
            "allowed.test",
            false,
            "--resolve allowed.test:443:<denied IP>",
        ),
        (ok_ip, 443, "", false, "TLS without SNI (a raw IP)"),
        (ok_ip, 443, ok_ip, false, "https://<raw IP>"),
        (ok_ip, 80, ok_ip, false, "http://<raw IP>"),
        (other_ip, 80, "allowed.test", false, "a forged Host"),
    ] {
        let (reached, out) = get_named(&agent, &a, ip, port, sni).await;
        assert_eq!(reached, want, "allow-list, {what}: {out}");
    }
    // Other ports follow the CIDR rules: none listed, so refused.
    let (reached, took, out) = fetch_in(&agent, &a, &inet.url(ok_ip)).await;
    assert!(
        !reached && took < Duration::from_secs(2),
        "port {}: {out}",
        inet.port
    );
    let (_, out) = get_named(&agent, &a, other_ip, 80, "denied.test").await;
    assert!(
        out.contains("403") && out.contains("egress policy"),
        "{out}"
    );

    // Deny-list: everything but the listed name.
    for (ip, port, sni, want, what) in [
        (ok_ip, 443, "allowed.test", true, "an unlisted name"),
        (other_ip, 443, "denied.test", false, "the listed name"),
        (other_ip, 443, "allowed.test", false, "a forged SNI"),
    ] {
        let (reached, out) = get_named(&agent, &d, ip, port, sni).await;
        assert_eq!(reached, want, "deny-list, {what}: {out}");
    }
    assert!(
        fetch_in(&agent, &d, &inet.url(other_ip)).await.0,
        "other ports stay open"
    );

    // A run-time change: allowed.test denied, then allowed again, the same container.
    let took = change(&agent, &a, 2, domains(&["*.wild.test"], &[])).await;
    assert!(took < Duration::from_secs(1), "the change took {took:?}");
    assert!(
        !get_named(&agent, &a, ok_ip, 443, "allowed.test").await.0,
        "allowed → denied"
    );
    change(&agent, &a, 3, domains(&["allowed.test"], &[])).await;
    assert!(
        get_named(&agent, &a, ok_ip, 443, "allowed.test").await.0,
        "denied → allowed"
    );

    // The decision log holds these attempts, newest last, with names and verdicts.
    let log = agent.client.network_log(&a).await.expect("network log");
    let seen = |dest: &str, domain: Option<&str>, verdict: EgressVerdict| {
        log.entries
            .iter()
            .any(|e| e.destination == dest && e.domain.as_deref() == domain && e.verdict == verdict)
    };
    let (ok443, other443) = (format!("{ok_ip}:443"), format!("{other_ip}:443"));
    assert!(
        seen(&ok443, Some("allowed.test"), EgressVerdict::Allowed),
        "{log:#?}"
    );
    assert!(
        seen(&other443, Some("denied.test"), EgressVerdict::Denied),
        "{log:#?}"
    );
    assert!(
        seen(&other443, Some("allowed.test"), EgressVerdict::Denied),
        "{log:#?}"
    );
    assert!(seen(&ok443, None, EgressVerdict::Denied), "{log:#?}");
    let last = log.entries.last().expect("entries");
    assert_eq!(
        (last.domain.as_deref(), last.verdict),
        (Some("allowed.test"), EgressVerdict::Allowed)
    );
    let pinned = log
        .entries
        .iter()
        .find(|e| e.destination == other443 && e.domain.as_deref() == Some("allowed.test"));
    assert!(
        pinned
            .and_then(|e| e.reason.as_deref())
            .is_some_and(|r| r.contains("pinning")),
        "{log:#?}"
    );
    assert_eq!(log.capacity, 256);
    let other_log = agent.client.network_log(&d).await.expect("network log");
    assert!(
        other_log
            .entries
            .iter()
            .all(|e| e.destination != ok443 || e.domain.as_deref() == Some("allowed.test"))
    );

    for id in [&a, &d] {
        agent.client.destroy_sandbox(id).await.expect("delete");
    }
    assert_eq!(
        must(&format!("iptables -w -t nat -S COVE-NAT-{}", net.bridge))
            .lines()
            .count(),
        1
    );
    let _ = tls.kill();
    let _ = tls.wait();
    let _ = std::fs::remove_file(&hosts);
    drop(agent);
    drop(inet);
    drop(net);
}

/// Inside a sandbox: `n` sequential new connections to `ip:443` (TCP connect + TLS with SNI
/// `sni` + `GET /hello.txt` HTTP/1.0 until close), the first 10 dropped; each in milliseconds.
async fn https_latencies(agent: &Agent, id: &str, ip: &str, sni: &str, n: usize) -> Vec<f64> {
    let script = format!(
        "import socket,ssl,time\nc=ssl.create_default_context(); c.check_hostname=False; c.verify_mode=ssl.CERT_NONE\nr=b'GET /hello.txt HTTP/1.0'+bytes([13,10])+b'Host: {sni}'+bytes([13,10,13,10])\nfor i in range({n}):\n    t=time.perf_counter()\n    s=c.wrap_socket(socket.create_connection(('{ip}',443),timeout=5),server_hostname='{sni}')\n    s.sendall(r)\n    d=b''\n    while True:\n        b=s.recv(4096)\n        if not b: break\n        d+=b\n    s.close()\n    assert b'hello from the internet' in d\n    if i>=10: print('ms', (time.perf_counter()-t)*1000)\n"
    );
    let (code, out) = agent.exec(id, &format!("python3 -c \"{script}\"")).await;
    assert_eq!(code, 0, "{out}");
    out.lines()
        .filter_map(|l| l.strip_prefix("ms "))
        .filter_map(|s| s.trim().parse::<f64>().ok())
        .collect()
}

/// The `q` quantile (0..=1) of `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i]
}

/// Puts a new sandbox (with `egress`) and returns (id, create → started).
async fn timed_create(agent: &Agent, prefix: &str, egress: &EgressPolicy) -> (String, Duration) {
    let id = sid(prefix);
    let t = Instant::now();
    agent.sandbox(&id, |s| s.egress = egress.clone()).await;
    (id, t.elapsed())
}

/// Benchmark (run by `scripts/bench.sh`, ignored otherwise; ~30 s): the added latency of an
/// allowed HTTPS request through a domain policy (the egress proxy) against a sandbox without a
/// policy, and create → started with the policy against without. Prints figures, asserts none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench.sh runs it with --ignored --nocapture"]
async fn egress_policy_bench() {
    let tag = rand_hex(6);
    let net = NetGuard {
        name: format!("cove-egbench-{tag}"),
        bridge: format!("cvb{tag}"),
    };
    let inet = Internet::start();
    let mut tls = serve_tls(&inet);
    let hosts = std::env::temp_dir().join(format!("{}-hosts", inet.ns));
    std::fs::write(&hosts, format!("{} allowed.test\n", inet.allowed)).expect("hosts file");
    let hosts_arg = hosts.display().to_string();
    let agent = Agent::start(&[
        "--sandbox-network",
        &net.name,
        "--sandbox-bridge",
        &net.bridge,
        "--egress-hosts",
        &hosts_arg,
    ]);
    let with = domains(&["allowed.test"], &[]);
    let without = EgressPolicy::default();
    let ip = inet.allowed.clone();

    // create → started, alternating, three of each.
    let (mut ids, mut t_with, mut t_without) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let (id, t) = timed_create(&agent, "egbp", &with).await;
        ids.push(id);
        t_with.push(t.as_secs_f64() * 1000.0);
        let (id, t) = timed_create(&agent, "egbn", &without).await;
        ids.push(id);
        t_without.push(t.as_secs_f64() * 1000.0);
    }
    let (p, n) = (ids[0].clone(), ids[1].clone());
    wait_until("the TLS test host", Duration::from_secs(20), || async {
        get_named(&agent, &p, &ip, 443, "allowed.test").await.0
    })
    .await;

    // The same HTTPS request, three rounds alternating the two sandboxes.
    let (mut all_p, mut all_n) = (Vec::new(), Vec::new());
    println!("egress bench: allowed HTTPS request (new connection each), 50 per sandbox and round");
    for round in 0..4 {
        // The order alternates too, so neither side always runs first.
        let (lp, ln) = if round % 2 == 0 {
            let lp = https_latencies(&agent, &p, &ip, "allowed.test", 60).await;
            (
                lp,
                https_latencies(&agent, &n, &ip, "allowed.test", 60).await,
            )
        } else {
            let ln = https_latencies(&agent, &n, &ip, "allowed.test", 60).await;
            (
                https_latencies(&agent, &p, &ip, "allowed.test", 60).await,
                ln,
            )
        };
        println!(
            "  round {round}: through the policy p50 {:.3} / p90 {:.3} ms, no policy p50 {:.3} / p90 {:.3} ms, added at p50 {:.3} ms",
            quantile(&lp, 0.5),
            quantile(&lp, 0.9),
            quantile(&ln, 0.5),
            quantile(&ln, 0.9),
            quantile(&lp, 0.5) - quantile(&ln, 0.5)
        );
        all_p.extend(lp);
        all_n.extend(ln);
    }
    let (pp, pn) = (quantile(&all_p, 0.5), quantile(&all_n, 0.5));
    println!(
        "  all rounds: p50 {pp:.3} ms through the policy vs {pn:.3} ms without: added {:.3} ms ({:.2}x; goal <= 1 ms added)",
        pp - pn,
        pp / pn
    );
    let (cw, cn) = (quantile(&t_with, 0.5), quantile(&t_without, 0.5));
    println!(
        "egress bench: create -> started with a domain policy {} ms (median {cw:.0}), without {} ms (median {cn:.0}): {:.2}x",
        fmt_ms(&t_with),
        fmt_ms(&t_without),
        cw / cn
    );

    for id in &ids {
        agent.client.destroy_sandbox(id).await.expect("delete");
    }
    let _ = tls.kill();
    let _ = tls.wait();
    let _ = std::fs::remove_file(&hosts);
    drop(agent);
    drop(inet);
    drop(net);
}

fn fmt_ms(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}
