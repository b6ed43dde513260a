"""Egress policies through the official Daytona SDK, unmodified, against `cove up` (issue 16).

`CreateSandboxFromSnapshotParams(network_allow_list=...)` reaches the allowed test host only (the other
is refused at once, not after a timeout); `sandbox.update_network_settings(...)` changes the policy of the
running sandbox without a restart (allowed -> denied -> allowed, the same container: PID 1 keeps its
start time); `network_block_all=True` reaches nothing. The "internet" is two addresses (TEST-NET-2) that
the test puts in its own network namespace on this machine, with an HTTP server on both; no traffic goes
anywhere else.
"""

import pathlib
import secrets
import subprocess
import sys
import tempfile
import time

import pytest
from daytona import CreateSandboxFromSnapshotParams


def sh(cmd):
    subprocess.run(["sh", "-c", cmd], check=True, capture_output=True)


class Internet:
    """A network namespace routed from the host, holding two test hosts with an HTTP server."""

    def __init__(self):
        tag = secrets.token_hex(3)
        x = (int(tag[:2], 16) & 0xFC) or 4
        self.ns = f"cvsdk-{tag}"
        host_if, ns_if = f"cvsh{tag}", f"cvsn{tag}"
        host_ip, ns_ip = f"203.0.113.{x + 1}", f"203.0.113.{x + 2}"
        y = x // 4
        self.allowed, self.other = f"198.51.100.{2 * y + 1}", f"198.51.100.{2 * y + 2}"
        self.port = 20000 + x
        self.routes = [self.allowed, self.other]
        setup = (f"ip netns add {self.ns} && ip link add {host_if} type veth peer name {ns_if}"
                 f" && ip link set {ns_if} netns {self.ns} && ip addr add {host_ip}/30 dev {host_if}"
                 f" && ip link set {host_if} up && ip -n {self.ns} link set lo up"
                 f" && ip -n {self.ns} addr add {ns_ip}/30 dev {ns_if} && ip -n {self.ns} link set {ns_if} up"
                 f" && ip -n {self.ns} route add default via {host_ip}")
        for a in self.routes:
            setup += f" && ip -n {self.ns} addr add {a}/32 dev {ns_if} && ip route add {a}/32 via {ns_ip}"
        sh(setup)
        self.www = tempfile.TemporaryDirectory(prefix="cove-sdk-net-")
        pathlib.Path(self.www.name, "hello.txt").write_text("hello from the internet\n")
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "http.server", str(self.port),
             "--bind", "0.0.0.0", "--directory", self.www.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def url(self, addr):
        return f"http://{addr}:{self.port}/hello.txt"

    def close(self):
        self.server.kill()
        self.server.wait()
        subprocess.run(["ip", "netns", "del", self.ns], check=False)
        self.www.cleanup()


@pytest.fixture(scope="module")
def internet():
    net = Internet()
    yield net
    net.close()


FETCH = ("import urllib.request,sys,time\n"
         "t=time.time()\n"
         "try:\n"
         "    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())\n"
         "except Exception as e:\n"
         "    print('FAIL', e, time.time()-t); sys.exit(3)\n")


def reach(sb, url):
    """(reached, seconds, output) of one GET from inside the sandbox."""
    t = time.monotonic()
    r = sb.process.exec(f"python3 -c \"{FETCH}\" {url}", timeout=30)
    return r.exit_code == 0, time.monotonic() - t, r.result


def assert_reach(sb, url, want, what):
    ok, took, out = reach(sb, url)
    assert ok == want, f"{what}: {out}"
    if not want:
        assert took < 4, f"{what}: refused only after {took:.1f}s ({out})"


def pid1_start(sb):
    r = sb.process.exec("cut -d' ' -f22 /proc/1/stat")
    assert r.exit_code == 0, r.result
    return r.result.strip()


def test_allow_list_and_run_time_changes(daytona, internet):
    allowed, other = internet.url(internet.allowed), internet.url(internet.other)
    sb = daytona.create(CreateSandboxFromSnapshotParams(network_allow_list=f"{internet.allowed}/32"),
                        timeout=120)
    try:
        assert sb.network_allow_list == f"{internet.allowed}/32"
        deadline = time.monotonic() + 20
        while not reach(sb, allowed)[0]:
            assert time.monotonic() < deadline, "the allowed test host never answered"
            time.sleep(0.3)
        assert_reach(sb, other, False, "allow-list -> other host")
        started = pid1_start(sb)

        t = time.monotonic()
        sb.update_network_settings(network_block_all=True)
        print(f"network-settings (block-all) answered in {time.monotonic() - t:.3f}s")
        assert sb.network_block_all is True and not sb.network_allow_list
        assert_reach(sb, allowed, False, "block-all -> allowed host")

        t = time.monotonic()
        sb.update_network_settings(network_allow_list=f"{internet.other}/32")
        print(f"network-settings (allow-list) answered in {time.monotonic() - t:.3f}s")
        assert sb.network_block_all is False
        assert_reach(sb, other, True, "new allow-list -> listed host")
        assert_reach(sb, allowed, False, "new allow-list -> previously allowed host")

        sb.update_network_settings(network_block_all=False)
        assert_reach(sb, allowed, True, "unrestricted again -> allowed host")
        assert_reach(sb, other, True, "unrestricted again -> other host")
        assert pid1_start(sb) == started, "the sandbox was restarted"
        sb.refresh_data()
        assert "started" in str(sb.state).lower(), sb.state
    finally:
        sb.delete()


def test_block_all_at_create(daytona, internet):
    sb = daytona.create(CreateSandboxFromSnapshotParams(network_block_all=True), timeout=120)
    try:
        assert sb.network_block_all is True
        assert_reach(sb, internet.url(internet.allowed), False, "block-all -> test host")
    finally:
        sb.delete()
