"""The runner's cloud-init script (infra/terraform/modules/runners/cloud-init.sh.tftpl), rendered as
Terraform renders it and run on a stand-in host: a container of the sandbox base image with
systemd (systemd.Dockerfile). It installs the agent and the proxy from a local file server
(which also plays the instance metadata service and the control plane), enrolls the runner,
writes units that `systemd-analyze verify` accepts, and the agent they start answers its health
route and heartbeats with the enrolled token. The agent runs with the simulated runtime (the
stand-in host has no Docker engine); everything else is the production script."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HERE, ROOT, TARGET, TF, binary

TEMPLATE = TF / "modules" / "runners" / "cloud-init.sh.tftpl"
ENROLLMENT_KEY = "dtn_" + "e" * 64
RUNNER_TOKEN = "runner-token-" + "a" * 32
RUNNER_ID = "runner-cloud-init-test"


def render(template: str, values: dict) -> str:
    """Terraform templatefile(): ${name} interpolations, $${ escapes; no directives used."""
    assert "%{" not in template, "the template uses directives this renderer does not know"
    out = re.sub(r"(?<!\$)\$\{([a-z0-9_]+)\}", lambda m: str(values[m.group(1)]), template)
    missing = set(re.findall(r"(?<!\$)\$\{([a-z0-9_]+)\}", template)) - set(values)
    assert not missing, missing
    return out.replace("$${", "${")


def test_the_renderer_matches_what_terraform_passes():
    names = set(re.findall(r"(?<!\$)\$\{([a-z0-9_]+)\}", TEMPLATE.read_text()))
    main = (TF / "modules" / "runners" / "main.tf").read_text()
    block = main.split("templatefile(", 1)[1].split("})", 1)[0]
    passed = set(re.findall(r"^\s+([a-z0-9_]+)\s+=", block, re.M))
    assert names == passed, (names ^ passed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Artifacts, IMDSv2 and the control plane's runner routes, on 127.0.0.1."""

    def __init__(self, artifacts: dict[str, bytes]):
        self.artifacts = artifacts
        self.enrollments: list[dict] = []
        self.heartbeats: list[str] = []
        self.downloads: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, body=b"", ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/artifacts/"):
                    name = self.path.split("/")[-1]
                    server.downloads.append(name)
                    if name in server.artifacts:
                        return self.reply(200, server.artifacts[name], "application/octet-stream")
                    return self.reply(404)
                if self.path.startswith("/latest/meta-data/"):
                    if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
                        return self.reply(401)
                    item = self.path.rsplit("/", 1)[-1]
                    return self.reply(200, {"instance-id": b"i-0cloudinit", "local-ipv4": b"127.0.0.1"}[item], "text/plain")
                return self.reply(404)

            def do_PUT(self):
                if self.path == "/latest/api/token":
                    return self.reply(200, b"imds-token", "text/plain")
                return self.reply(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization", "")
                if self.path == "/api/runners":
                    if auth != f"Bearer {ENROLLMENT_KEY}":
                        return self.reply(401, b'{"message":"Invalid credentials"}')
                    server.enrollments.append(json.loads(body))
                    return self.reply(201, json.dumps({"id": RUNNER_ID, "apiKey": RUNNER_TOKEN}).encode())
                if self.path == "/api/runners/healthcheck":
                    server.heartbeats.append(auth)
                    return self.reply(200, b"{}")
                return self.reply(200, b"{}")

            do_PATCH = do_POST

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


def docker(*args, check=True, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def host_image() -> str:
    if docker("image", "inspect", "cove-sandbox-base:latest", check=False).returncode != 0:
        subprocess.run(["bash", str(ROOT / "tests" / "images" / "build-base.sh")], check=True,
                       stdout=subprocess.DEVNULL, timeout=1800)
    base_id = docker("image", "inspect", "-f", "{{.Id}}", "cove-sandbox-base:latest").stdout.strip()
    dockerfile = (HERE / "systemd.Dockerfile").read_bytes()
    tag = "cove-infra-systemd:" + hashlib.sha256(dockerfile + base_id.encode()).hexdigest()[:16]
    if docker("image", "inspect", tag, check=False).returncode != 0:
        subprocess.run(["docker", "build", "--network", "host", "-q", "-t", tag, "-f", str(HERE / "systemd.Dockerfile"),
                        str(HERE)], check=True, env=dict(os.environ, DOCKER_BUILDKIT="0"),
                       stdout=subprocess.DEVNULL, timeout=900)
    return tag


def artifacts() -> dict[str, bytes]:
    files = {
        "cove-runner": binary("COVE_RUNNER_BIN", "cove-runner").read_bytes(),
        "cove-proxy": binary("COVE_PROXY_BIN", "cove-proxy").read_bytes(),
    }
    toolbox = TARGET / "x86_64-unknown-linux-musl" / "release" / "cove-toolbox"
    # the simulated runtime never starts the in-sandbox daemon; the real one when it is built
    files["cove-toolbox"] = toolbox.read_bytes() if toolbox.is_file() else b"#!/bin/sh\nexit 0\n"
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in files.items()).encode()
    return files


def wait_for(what, fn, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except OSError:
        return None


def test_cloud_init_installs_enrolls_and_starts_the_runner(host_image, tmp_path):
    server = Server(artifacts())
    agent_port, proxy_port = free_port(), free_port()
    base = f"http://127.0.0.1:{server.port}"
    script = render(TEMPLATE.read_text(), {
        "artifact_base_url": f"{base}/artifacts",
        "aws_region": "us-east-1",
        "control_plane_url": base,
        "runner_region_id": "test-region",
        "enrollment_parameter": "/cove-test/runner-enrollment-key",
        "runner_secret_id": "cove-test/runner",
        "metadata_url": base,
        "runtime": "fake",
        # already in the base image: the script installs nothing (no network in tests)
        "packages": "curl ca-certificates python3",
        "registry_enabled": "false",
        "registry_port": 5000,
        "registry_bucket": "unused",
        "agent_port": agent_port,
        "proxy_port": proxy_port,
        "proxy_domain": "preview.test",
        "s3_bucket": "cove-test-data",
        "agent_flags": "--snapshot cove-sandbox-base:latest --heartbeat-secs 1",
    })
    (tmp_path / "user-data.sh").write_text(script)
    (tmp_path / "enrollment-key").write_text(ENROLLMENT_KEY + "\n")
    (tmp_path / "runner-secret.json").write_text(json.dumps({
        "aws_access_key_id": "AKIATEST", "aws_secret_access_key": "secret-test",
        "proxy_api_key": "proxy-token-test", "internal_registry_password": "registry-test"}))
    name = f"cove-cloud-init-{agent_port}"
    docker("run", "-d", "--name", name, "--network", "host", "--tmpfs", "/run", "--tmpfs", "/run/lock",
           "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", host_image)
    try:
        wait_for("systemd", lambda: docker("exec", name, "systemctl", "is-system-running", check=False)
                 .stdout.strip() in ("running", "degraded"))
        docker("exec", name, "mkdir", "-p", "/etc/cove-test")
        for f in ("enrollment-key", "runner-secret.json"):
            docker("cp", str(tmp_path / f), f"{name}:/etc/cove-test/{f}")
        docker("cp", str(HERE / "data" / "fake-aws"), f"{name}:/usr/local/bin/aws")
        docker("cp", str(tmp_path / "user-data.sh"), f"{name}:/root/user-data.sh")

        run = docker("exec", name, "bash", "/root/user-data.sh", check=False, timeout=180)
        assert run.returncode == 0, f"cloud-init script failed:\n{run.stdout}\n{run.stderr}"
        assert "cove-runner answers" in run.stderr
        assert sorted(set(server.downloads)) == ["SHA256SUMS", "cove-proxy", "cove-runner", "cove-toolbox"]
        assert server.enrollments == [{"regionId": "test-region", "name": "i-0cloudinit"}]

        units = ["/etc/systemd/system/cove-runner.service", "/etc/systemd/system/cove-proxy.service"]
        verify = docker("exec", name, "systemd-analyze", "verify", *units, check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        complaints = [line for line in (verify.stdout + verify.stderr).splitlines() if "cove-" in line]
        assert not complaints, complaints
        for unit in ("cove-runner", "cove-proxy"):
            assert docker("exec", name, "systemctl", "is-enabled", unit).stdout.strip() == "enabled"
            assert docker("exec", name, "systemctl", "is-active", unit).stdout.strip() == "active"
        assert docker("exec", name, "stat", "-c", "%a", "/etc/cove/runner.env").stdout.strip() == "600"
        cmdline = docker("exec", name, "systemctl", "show", "-p", "ExecStart", "cove-runner").stdout
        assert RUNNER_TOKEN not in cmdline, "the token must not be on the command line"

        status, body = wait_for("the agent's health route", lambda: get(f"http://127.0.0.1:{agent_port}/"))
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, _ = wait_for("the proxy's health route", lambda: get(f"http://127.0.0.1:{proxy_port}/health"))
        assert status == 200
        wait_for("a heartbeat", lambda: server.heartbeats)
        assert set(server.heartbeats) == {f"Bearer {RUNNER_TOKEN}"}

        # a second run (a reboot) keeps the enrollment and restarts the units
        again = docker("exec", name, "bash", "/root/user-data.sh", check=False, timeout=180)
        assert again.returncode == 0, again.stderr
        assert "already enrolled" in again.stderr
        assert len(server.enrollments) == 1
        wait_for("the agent after a rerun", lambda: get(f"http://127.0.0.1:{agent_port}/"))
    finally:
        docker("rm", "-f", name, check=False)
