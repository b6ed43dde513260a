"""Contracts between the code and the infrastructure: Spin variables, the flags the runner agent
and the proxy are started with, the ports and health routes every part agrees on."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from conftest import ROOT, TF, binary, find, load_hcl, spin_manifest, tf_locals

# Declared in spin.toml but deliberately left to their defaults by a deployment.
LEFT_TO_DEFAULTS = {
    "lifecycle_minute_secs": "test-only time scale",
    "jwt_hs256_secret": "local HS256 tokens; production verifies RS256/JWKS",
}
RUNNER_TEMPLATE = TF / "modules" / "runners" / "cloud-init.sh.tftpl"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def declared() -> dict[str, dict]:
    return spin_manifest()["variables"]


def required() -> set[str]:
    return {n for n, v in declared().items() if v.get("required")}


def terraform_spin_variables() -> tuple[set[str], set[str]]:
    loc = tf_locals()
    return set(loc["spin_variables"]), set(loc["spin_secrets"])


def spinapp_variables(objects) -> dict[str, dict]:
    app = find(objects, "SpinApp", "cove")
    return {v["name"]: v for v in app["spec"]["variables"]}


def test_spin_toml_requires_what_the_components_cannot_default():
    assert required() == {"aws_access_key_id", "aws_secret_access_key"}


def test_terraform_sets_every_spin_variable(rendered):
    plain, secret = terraform_spin_variables()
    assert not plain & secret
    names = plain | secret
    assert required() <= names
    assert names <= set(declared()), f"not in spin.toml: {names - set(declared())}"
    assert names == set(declared()) - set(LEFT_TO_DEFAULTS)
    for n in secret:
        assert declared()[n].get("secret") or declared()[n].get("required"), f"{n} is not secret in spin.toml"
    for n, v in declared().items():
        if v.get("secret") and n not in LEFT_TO_DEFAULTS:
            assert n in secret, f"{n} is secret in spin.toml but a plain value in Terraform"


@pytest.mark.parametrize("overlay", ["base", "overlays/local", "overlays/production"])
def test_kubernetes_sets_every_spin_variable(rendered, overlay):
    objects = rendered[overlay]
    vs = spinapp_variables(objects)
    assert required() <= set(vs)
    assert set(vs) == set(declared()) - set(LEFT_TO_DEFAULTS)
    cm = find(objects, "ConfigMap", "cove-spin-variables")["data"]
    plain, secret = terraform_spin_variables()
    for n, v in vs.items():
        ref = v["valueFrom"]
        if n in secret:
            assert ref["secretKeyRef"]["name"] == "cove-secrets" and ref["secretKeyRef"]["key"] == n, n
        else:
            assert ref["configMapKeyRef"]["name"] == "cove-spin-variables" and ref["configMapKeyRef"]["key"] == n, n
            assert n in cm, f"{n} missing from the ConfigMap"
    if overlay == "overlays/local":
        s = find(objects, "Secret", "cove-secrets")
        assert set(s["data"]) == secret


def help_flags(path) -> set[str]:
    out = subprocess.run([str(path), "--help"], check=True, capture_output=True, text=True).stdout
    flags = set(FLAG.findall(out))
    assert "--help" in flags and len(flags) > 3
    return flags


def unit_exec(template: str, program: str) -> str:
    """The ExecStart command line of PROGRAM in the cloud-init template, continuations joined."""
    m = re.search(rf"ExecStart=/usr/local/bin/{program} (.*?)(?<!\\\\)\n(?!\s+--)", template, re.S)
    assert m, program
    return m.group(1).replace("\\\\\n", " ")


def terraform_agent_flags() -> set[str]:
    flags = set()
    text = (TF / "main.tf").read_text()
    m = re.search(r"agent_flags\s*=\s*concat\((.*)\)", text)
    assert m
    flags |= set(FLAG.findall(m.group(1)))
    example = (TF / "examples" / "production" / "terraform.tfvars.example").read_text()
    m = re.search(r"^runner_agent_flags\s*=\s*\[(.*?)\]", example, re.S | re.M)
    assert m
    flags |= set(FLAG.findall(m.group(1)))
    return flags


def daemonset_agent_command(objects) -> str:
    ds = find(objects, "DaemonSet", "cove-runner")
    (agent,) = [c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "agent"]
    script = " ".join(agent["args"])
    return script.split("exec /usr/local/bin/cove-runner", 1)[1]


def test_the_runner_is_started_with_flags_the_agent_accepts(rendered):
    accepted = help_flags(binary("COVE_RUNNER_BIN", "cove-runner"))
    assert "--no-such-flag" not in accepted
    template = RUNNER_TEMPLATE.read_text()
    used = {
        "cloud-init": set(FLAG.findall(unit_exec(template, "cove-runner"))),
        "terraform agent_flags": terraform_agent_flags(),
    }
    for overlay, objects in rendered.items():
        used[overlay] = set(FLAG.findall(daemonset_agent_command(objects)))
    for where, flags in used.items():
        assert flags, where
        assert flags <= accepted, f"{where}: flags cove-runner does not accept: {sorted(flags - accepted)}"
    assert "--token" not in used["cloud-init"], "the token comes from the environment file, never argv"


def proxy_container(objects) -> dict:
    d = find(objects, "Deployment", "cove-proxy")
    (c,) = d["spec"]["template"]["spec"]["containers"]
    return c


def test_the_proxy_is_started_with_flags_it_accepts(rendered):
    accepted = help_flags(binary("COVE_PROXY_BIN", "cove-proxy"))
    used = {"cloud-init": set(FLAG.findall(unit_exec(RUNNER_TEMPLATE.read_text(), "cove-proxy")))}
    for overlay, objects in rendered.items():
        used[overlay] = {a for a in proxy_container(objects)["args"] if a.startswith("--")}
    for where, flags in used.items():
        assert flags and flags <= accepted, f"{where}: {sorted(flags - accepted)}"


def default_port(path, flag="--listen") -> int:
    out = subprocess.run([str(path), "--help"], check=True, capture_output=True, text=True).stdout
    block = out.split(flag, 1)[1].split("\n      --", 1)[0]
    m = re.search(r"\[default: [\d.]+:(\d+)\]", block)
    assert m, block
    return int(m.group(1))


def listen_port(args: str) -> int:
    m = re.search(r"--listen[ =]\S*?:(\$\{?\w+\}?|\d+)", args)
    assert m, args
    return m.group(1)


def test_ports_agree_everywhere(rendered):
    ports = tf_locals()["ports"]
    agent, proxy = int(ports["agent"]), int(ports["proxy"])
    # the code's defaults
    assert default_port(binary("COVE_RUNNER_BIN", "cove-runner")) == agent
    assert default_port(binary("COVE_PROXY_BIN", "cove-proxy")) == proxy
    # Terraform: the template listens on the ports main.tf hands the module, which the load
    # balancer's target group and the security groups use too
    template = RUNNER_TEMPLATE.read_text()
    assert listen_port(unit_exec(template, "cove-runner")) == "${agent_port}"
    assert listen_port(unit_exec(template, "cove-proxy")) == "${proxy_port}"
    assert 'curl -fsS -o /dev/null "http://127.0.0.1:${agent_port}/"' in template
    main = load_hcl(TF / "main.tf")
    mods = {k: v for block in main["module"] for k, v in block.items()}
    assert mods["runners"]["agent_port"] == "${local.ports.agent}"
    assert mods["runners"]["proxy_port"] == "${local.ports.proxy}"
    assert mods["edge"]["proxy_port"] == "${local.ports.proxy}"
    assert mods["edge"]["control_plane_port"] == "${local.ports.control_plane}"
    assert mods["control_plane"]["port"] == "${local.ports.control_plane}"
    assert tf_locals()["spin_variables"]["runner_hosts"] == "http://*:${local.ports.agent}"
    edge = (TF / "modules" / "edge" / "main.tf").read_text()
    assert 'path    = "/health"' in edge and 'path    = "/api/health"' in edge
    # the health routes exist in the code
    assert '"/health"' in (ROOT / "crates" / "proxy" / "src" / "server.rs").read_text()
    assert 'path = "/", tag = "runner"' in (ROOT / "runner-agent" / "src" / "http.rs").read_text()
    assert '"/api/health/..."' in (ROOT / "spin.toml").read_text()
    # Kubernetes
    for overlay, objects in rendered.items():
        ds = find(objects, "DaemonSet", "cove-runner")["spec"]["template"]["spec"]
        (a,) = [c for c in ds["containers"] if c["name"] == "agent"]
        assert int(listen_port(daemonset_agent_command(objects))) == agent
        assert [p["containerPort"] for p in a["ports"]] == [agent]
        assert a["livenessProbe"]["httpGet"]["port"] == agent and a["livenessProbe"]["httpGet"]["path"] == "/"
        assert "--api-url \"http://$NODE_IP:%d\"" % agent in daemonset_agent_command(objects)
        c = proxy_container(objects)
        assert int(listen_port(" ".join(c["args"]).replace(" 0.0.0.0", "=0.0.0.0"))) == proxy
        assert [p["containerPort"] for p in c["ports"]] == [proxy]
        assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": proxy}
        svc = find(objects, "Service", "cove-proxy")
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == [proxy]
        cm = find(objects, "ConfigMap", "cove-spin-variables")["data"]
        assert cm["runner_hosts"] == f"http://*:{agent}"


@pytest.mark.parametrize("overlay", ["base", "overlays/local", "overlays/production"])
def test_kubernetes_domains_agree(rendered, overlay):
    objects = rendered[overlay]
    hosts = find(objects, "ConfigMap", "cove-hosts")["data"]
    spin = find(objects, "ConfigMap", "cove-spin-variables")["data"]
    domain = hosts["proxy_domain"]
    assert re.fullmatch(r"https?://" + re.escape(domain), spin["proxy_domain"])
    assert spin["toolbox_proxy_url"] == spin["proxy_domain"] + "/toolbox"
    ing = find(objects, "Ingress", "cove-proxy")
    assert [r["host"] for r in ing["spec"]["rules"]] == [f"*.{domain}", domain]
    for t in ing["spec"].get("tls", []):
        assert set(t["hosts"]) == {f"*.{domain}", domain}
    assert spin["s3_bucket"] == hosts["s3_bucket"]
