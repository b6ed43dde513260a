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
use cove_runner_api::{EgressPolicy, SandboxSpec, SandboxState};

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
        let x = u8::from_str_radix(&tag[..2], 16).expect("hex") & 0xfc;
        let (host_ip, ns_ip) = (
            format!("203.0.113.{}", x + 1),
            format!("203.0.113.{}", x + 2),
        );
        let y = x / 4;
        let allowed = format!("198.51.100.{}", 2 * y + 1);
        let other = format!("198.51.100.{}", 2 * y + 2);
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
    let agent = Agent::start(&[
        "--sandbox-network",
        &net.name,
        "--sandbox-bridge",
        &net.bridge,
        "--isolation-check-secs",
        "1",
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
