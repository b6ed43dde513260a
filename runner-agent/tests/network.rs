//! Sandbox network isolation against real Docker and iptables (issue 9 item 3): sandboxes of two
//! organisations cannot reach each other, nothing on the host answers them, link-local and
//! other Docker bridges are out of reach, the "internet" (a server in a network namespace on a
//! non-local address) is reachable, and the host still reaches sandbox ports. The agent uses a
//! network and bridge of its own; the guards remove them, their rules and the namespace by name.

use crate::common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Agent, image, sid, wait_until};
use cove_runner_api::EgressVerdict;

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
        for chain in ["COVE-IN", "COVE-FWD"] {
            sh(&format!(
                "iptables -w -F {chain}-{b}; iptables -w -X {chain}-{b}"
            ));
        }
        while sh(&format!(
            "iptables -w -t nat -D PREROUTING -i {b} -j COVE-NAT-{b}"
        ))
        .0
        {}
        sh(&format!(
            "iptables -w -t nat -F COVE-NAT-{b}; iptables -w -t nat -X COVE-NAT-{b}"
        ));
        sh(&format!("docker network rm {}", self.name));
    }
}

/// A network namespace standing for the internet: reachable from the host through a veth
/// pair, holding `public` (TEST-NET-2) and `link_local` (169.254/16) addresses and an HTTP
/// server on both.
struct Internet {
    ns: String,
    server: Option<Child>,
    public: String,
    link_local: String,
    port: u16,
}

impl Internet {
    fn start() -> Internet {
        let tag = rand_hex(6);
        let ns = format!("cvnet-{tag}");
        let (host_if, ns_if) = (format!("cvh{tag}"), format!("cvn{tag}"));
        let x = common::test_net_block();
        let (host_ip, ns_ip) = (
            format!("203.0.113.{}", x + 1),
            format!("203.0.113.{}", x + 2),
        );
        let public = format!("198.51.100.{}", 1 + x / 4);
        let link_local = format!("169.254.77.{}", 1 + x / 4);
        let mut me = Internet {
            ns: ns.clone(),
            server: None,
            public: public.clone(),
            link_local: link_local.clone(),
            port: 18000 + u16::from(x),
        };
        must(&format!("ip netns add {ns}"));
        must(&format!(
            "ip link add {host_if} type veth peer name {ns_if} && ip link set {ns_if} netns {ns} \
             && ip addr add {host_ip}/30 dev {host_if} && ip link set {host_if} up \
             && ip -n {ns} link set lo up && ip -n {ns} addr add {ns_ip}/30 dev {ns_if} \
             && ip -n {ns} addr add {public}/32 dev {ns_if} && ip -n {ns} addr add {link_local}/32 dev {ns_if} \
             && ip -n {ns} link set {ns_if} up && ip -n {ns} route add default via {host_ip} \
             && ip route add {public}/32 via {ns_ip} && ip route add {link_local}/32 via {ns_ip}"
        ));
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
}

impl Drop for Internet {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Deleting the namespace removes the veth pair and with it the host routes.
        sh(&format!("ip netns del {}", self.ns));
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{}-www", self.ns)));
    }
}

/// An HTTP listener on the host's 0.0.0.0 answering "host".
fn host_listener() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhost");
        }
    });
    port
}

/// Fetches `url` from inside a sandbox: (exit code, output).
async fn fetch_in(agent: &Agent, id: &str, url: &str) -> (i64, String) {
    let script = format!(
        "import urllib.request,sys\ntry:\n    print(urllib.request.urlopen('{url}', timeout=4).read().decode())\nexcept Exception as e:\n    print('FAIL', e); sys.exit(3)"
    );
    agent.exec(id, &format!("python3 -c \"{script}\"")).await
}

fn container_ip(id: &str, network: &str) -> String {
    must(&format!(
        "docker inspect -f '{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}' cove-sb-{id}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_reach_the_internet_only() {
    let tag = rand_hex(6);
    let net = NetGuard {
        name: format!("cove-test-{tag}"),
        bridge: format!("cvt{tag}"),
    };
    let internet = Internet::start();
    // An NFLOG group of its own: one process reads a group, and other agents may run meanwhile.
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
    let (a, b, c) = (sid("neta"), sid("netb"), sid("netc"));
    agent.sandbox(&a, |s| s.org_id = Some("org-a".into())).await;
    agent.sandbox(&b, |s| s.org_id = Some("org-b".into())).await;
    agent
        .sandbox(&c, |s| s.network = cove_runner_api::NetworkPolicy::BlockAll)
        .await;
    let a_ip = container_ip(&a, &net.name);
    let gateway = must(&format!(
        "docker network inspect -f '{{{{(index .IPAM.Config 0).Gateway}}}}' {}",
        net.name
    ));

    // A serves HTTP; it answers from inside A itself and to the host (host → sandbox works).
    agent
        .exec(
            &a,
            "setsid nohup python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 </dev/null & echo ok",
        )
        .await;
    let own = format!("http://{a_ip}:8000/");
    wait_until("A's server", Duration::from_secs(20), || async {
        fetch_in(&agent, &a, &own).await.0 == 0
    })
    .await;
    let from_host = reqwest::get(&own).await.expect("host → sandbox");
    assert_eq!(from_host.status(), 200);

    // B (another organisation) cannot reach it.
    let (code, out) = fetch_in(&agent, &b, &own).await;
    assert_ne!(code, 0, "B reached A: {out}");
    assert!(out.contains("FAIL"), "{out}");

    // Nothing on the host answers: not via the bridge gateway, docker0 or any host address.
    let port = host_listener();
    let local = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .expect("the host listener answers the host");
    assert_eq!(local.text().await.expect("body"), "host");
    let mut host_ips = vec![gateway.clone()];
    host_ips.extend(
        must("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")
            .lines()
            .map(str::to_owned),
    );
    assert!(host_ips.iter().any(|ip| ip == "172.17.0.1") || !sh("ip link show docker0").0);
    for ip in &host_ips {
        let (code, out) = fetch_in(&agent, &b, &format!("http://{ip}:{port}/")).await;
        assert_ne!(code, 0, "B reached the host at {ip}: {out}");
    }

    // A container on Docker's default bridge is out of reach (the host reaches it).
    let other = format!("cove-nettest-{tag}");
    must(&format!(
        "docker run -d --rm --name {other} --label cove.test=network --entrypoint python3 {} -m http.server 8000",
        image()
    ));
    let other_ip = must(&format!(
        "docker inspect -f '{{{{.NetworkSettings.IPAddress}}}}' {other}"
    ));
    let other_url = format!("http://{other_ip}:8000/");
    wait_until(
        "the default-bridge server",
        Duration::from_secs(20),
        || async { reqwest::get(&other_url).await.is_ok() },
    )
    .await;
    let (code, out) = fetch_in(&agent, &b, &other_url).await;
    sh(&format!("docker rm -f {other}"));
    assert_ne!(code, 0, "B reached a container on docker0: {out}");

    // The internet is reachable; link-local (cloud metadata) is not, though routed the same way.
    let public = format!("http://{}:{}/hello.txt", internet.public, internet.port);
    let ll = format!("http://{}:{}/hello.txt", internet.link_local, internet.port);
    wait_until("the internet server", Duration::from_secs(20), || async {
        reqwest::get(&ll).await.is_ok()
    })
    .await;
    let (code, out) = fetch_in(&agent, &b, &public).await;
    assert_eq!((code, out.trim()), (0, "hello from the internet"));
    let (code, out) = fetch_in(&agent, &a, &public).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = fetch_in(&agent, &b, &ll).await;
    assert_ne!(code, 0, "B reached a link-local address: {out}");

    // B (no policy) has the isolation's refusals in its decision log: the host's listener on the
    // bridge gateway, A's server, the link-local address; A's log has none of B's attempts.
    let refused = [
        format!("{gateway}:{port}"),
        format!("{a_ip}:8000"),
        format!("{}:{}", internet.link_local, internet.port),
    ];
    for dest in &refused {
        let mut found = false;
        for _ in 0..50 {
            let log = agent.client.network_log(&b).await.expect("network log");
            found = log.entries.iter().any(|e| {
                e.destination == *dest
                    && e.verdict == EgressVerdict::Denied
                    && e.rule.as_deref() == Some("isolation")
            });
            if found {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = agent.client.network_log(&b).await.expect("network log");
        assert!(found, "no isolation refusal of {dest} in B's log: {log:#?}");
    }
    let a_log = agent.client.network_log(&a).await.expect("network log");
    assert!(
        a_log
            .entries
            .iter()
            .all(|e| !refused.contains(&e.destination)),
        "{a_log:#?}"
    );

    // Names resolve as on the host (Docker's DNS forwards to the host's resolvers).
    if sh("getent hosts deb.debian.org").0 {
        let (code, out) = agent.exec(&b, "getent hosts deb.debian.org").await;
        assert_eq!(
            code, 0,
            "a sandbox cannot resolve what the host resolves: {out}"
        );
    }

    // networkBlockAll keeps network `none`: no internet either.
    assert_eq!(
        must(&format!(
            "docker inspect -f '{{{{.HostConfig.NetworkMode}}}}' cove-sb-{c}"
        )),
        "none"
    );
    let (code, out) = fetch_in(&agent, &c, &public).await;
    assert_ne!(code, 0, "a blocked sandbox reached the internet: {out}");

    // A flushed chain is restored by the agent (re-assertion every second here).
    let input_chain = format!("COVE-IN-{}", net.bridge);
    must(&format!("iptables -w -F {input_chain}"));
    must(&format!(
        "iptables -w -D INPUT -i {} -j {input_chain}",
        net.bridge
    ));
    wait_until("the rules to come back", Duration::from_secs(10), || async {
        sh(&format!(
            "iptables -w -C INPUT -i {} -j {input_chain} && iptables -w -C {input_chain} -j REJECT --reject-with icmp-admin-prohibited",
            net.bridge
        ))
        .0
    })
    .await;
    let (code, out) = fetch_in(&agent, &b, &format!("http://{gateway}:{port}/")).await;
    assert_ne!(code, 0, "B reached the host after the re-assertion: {out}");
    drop(agent);
    drop(internet);
    drop(net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_network_that_does_not_isolate() {
    let tag = rand_hex(6);
    let net = NetGuard {
        name: format!("cove-test-{tag}"),
        bridge: format!("cvt{tag}"),
    };
    // An existing network of that name with inter-container traffic on.
    must(&format!(
        "docker network create -o com.docker.network.bridge.name={} {}",
        net.bridge, net.name
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_cove-runner"))
        .args(["--listen", "127.0.0.1:0", "--token", "t", "--runner-id"])
        .arg(format!("r{tag}"))
        .arg("--data-dir")
        .arg(std::env::temp_dir().join(format!("cove-netrefuse-{tag}")))
        .args([
            "--sandbox-network",
            &net.name,
            "--sandbox-bridge",
            &net.bridge,
        ])
        .output()
        .expect("cove-runner");
    let _ = rustix::mount::unmount(
        std::env::temp_dir().join(format!("cove-netrefuse-{tag}/sandboxes")),
        rustix::mount::UnmountFlags::DETACH,
    );
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("cove-netrefuse-{tag}")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the agent started: {stderr}");
    assert!(
        stderr.contains("cannot isolate the sandbox network")
            && stderr.contains("enable_icc is not false"),
        "{stderr}"
    );
    drop(net);
}

/// A container of this runner on Docker's default bridge (made by an agent without a sandbox
/// network) is moved onto the sandbox network at start; one with network `none` stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_moves_old_containers_onto_the_network() {
    let tag = rand_hex(6);
    let net = NetGuard {
        name: format!("cove-test-{tag}"),
        bridge: format!("cvt{tag}"),
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let runner = format!("t{tag}");
    let (old, blocked) = (format!("cove-old-{tag}"), format!("cove-blocked-{tag}"));
    for (name, network) in [(&old, "bridge"), (&blocked, "none")] {
        must(&format!(
            "docker create --name {name} --network {network} --label cove.runner={runner} --entrypoint sleep {} infinity",
            image()
        ));
    }
    let networks = |name: &str| {
        must(&format!(
            "docker inspect -f '{{{{range $k, $v := .NetworkSettings.Networks}}}}{{{{$k}}}} {{{{end}}}}' {name}"
        ))
    };
    assert_eq!(networks(&old), "bridge");
    let agent = Agent::spawn(
        tmp.path(),
        &runner,
        &[
            "--sandbox-network",
            &net.name,
            "--sandbox-bridge",
            &net.bridge,
        ],
    );
    assert_eq!(networks(&old), net.name);
    assert_eq!(networks(&blocked), "none");
    drop(agent);
    drop(net);
}
