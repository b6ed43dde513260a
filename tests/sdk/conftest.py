"""Runs the official Daytona Python SDK (`daytona`, pinned in tests/requirements.txt) against `cove up`.

One `target/release/cove up --listen 127.0.0.1:0 --data-dir <tmp>` for the session; the SDK is configured
only with the printed `DAYTONA_API_URL` / `DAYTONA_API_KEY`, exactly as a user would.

Runner: `cove up` starts a runner agent itself (`cove up --help` mentions `--runner...`). A build of
cove without that gets one here instead: the fixture registers a runner as the admin
(`POST /api/runners`), starts `target/release/cove-runner` with the returned token and the control-plane
URL, and waits until the runner reports `ready` through its heartbeats.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import covetest  # noqa: E402

ROOT = covetest.ROOT
JWT_SECRET = covetest.new_secret("sdk-")
# Seconds between two usage samples of the runner agent (`--metrics-interval-secs`).
METRICS_INTERVAL_SECS = "1"


class Cove(covetest.CoveProcess):
    """One `cove up` on 127.0.0.1:<free port>, plus (if cove does not start one) a runner agent."""

    def __init__(self, data_dir):
        self.data_dir = pathlib.Path(data_dir)
        super().__init__(self.data_dir / "cove.stderr.log")
        self.runner = None

    def start(self, timeout=600):
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        # Users of other organizations sign in with JWTs of this secret (`other_org_key`).
        env["SPIN_VARIABLE_JWT_HS256_SECRET"] = JWT_SECRET
        # The runner agent (spawned by `cove up`, which passes its environment on) samples each
        # sandbox's usage every second, so `get_metrics` has a history within seconds.
        env.setdefault("COVE_RUNNER_METRICS_INTERVAL_SECS", METRICS_INTERVAL_SECS)
        manifest = os.environ.get("COVE_MANIFEST", str(ROOT / "spin.toml"))
        self.launch(manifest, ["--data-dir", str(self.data_dir / "cove"), "--no-build"], env, timeout)
        assert self.api_key, f"cove printed no admin key: {self.lines}"
        self._trust_local_ca()
        if not self._starts_its_own_runner():
            self._start_runner()
        self._wait_for_ready_runner()
        return self

    def _trust_local_ca(self):
        """The SDK uploads build contexts to `storageUrl` (cove's embedded S3 over HTTPS, see the
        README) with obstore, which trusts only the system store: cove's local CA goes there for
        the session (`COVE_CA_CERT=`), and out again on stop."""
        self.trusted_ca = None
        ca = next((l.split("=", 1)[1] for l in self.lines if l.startswith("COVE_CA_CERT=")), None)
        if not ca:
            return
        dest = pathlib.Path("/usr/local/share/ca-certificates") / f"cove-sdk-{uuid.uuid4().hex[:10]}.crt"
        dest.write_bytes(pathlib.Path(ca).read_bytes())
        subprocess.run(["update-ca-certificates"], check=True, capture_output=True)
        self.trusted_ca = dest

    def _untrust_local_ca(self):
        if getattr(self, "trusted_ca", None):
            self.trusted_ca.unlink(missing_ok=True)
            subprocess.run(["update-ca-certificates", "--fresh"], check=False, capture_output=True)
            self.trusted_ca = None

    def _starts_its_own_runner(self):
        out = subprocess.run([covetest.binary("cove"), "up", "--help"], capture_output=True, text=True,
                             check=True).stdout
        return "runner" in out.lower()

    def _admin(self, method, path, **kw):
        return requests.request(method, self.api_url + path, headers={"Authorization": f"Bearer {self.api_key}"},
                                timeout=30, **kw)

    def _start_runner(self):
        image = subprocess.run(["bash", str(ROOT / "tests/images/build-base.sh")], capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1]
        assert image
        r = self._admin("POST", "/runners", json={"regionId": "us", "name": f"sdk-{uuid.uuid4().hex[:8]}"})
        assert r.status_code in (200, 201), r.text
        reg = r.json()
        runner_dir = self.data_dir / "runner"
        runner_dir.mkdir()
        self.runner_log = open(self.data_dir / "runner.stderr.log", "ab")
        self.container_label = f"sdk{uuid.uuid4().hex[:10]}"
        self.runner = subprocess.Popen(
            [covetest.binary("cove-runner"), "--listen", "127.0.0.1:0", "--token", reg["apiKey"],
             "--data-dir", str(runner_dir), "--runner-id", self.container_label, "--control-plane-url", self.base,
             "--heartbeat-secs", "1", "--metrics-interval-secs", METRICS_INTERVAL_SECS],
            stdout=subprocess.DEVNULL, stderr=self.runner_log, stdin=subprocess.DEVNULL, cwd=ROOT,
        )

    def _wait_for_ready_runner(self, timeout=600):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.runner is not None and self.runner.poll() is not None:
                raise AssertionError(f"cove-runner exited: {self.runner.returncode}")
            r = self._admin("GET", "/runners")
            last = (r.status_code, r.text[:500])
            if r.status_code == 200 and any(x.get("state") == "ready" for x in r.json()):
                # This session's data dir is fresh, so every runner listed is ours: its containers
                # (warm pool included) are removed on stop.
                self.runner_ids = [x["id"] for x in r.json()]
                return
            time.sleep(0.5)
        raise AssertionError(f"no runner became ready: {last} {self.tail()}")

    def stop(self):
        self._untrust_local_ca()
        for proc in (self.runner, self.proc):
            covetest.stop_process(proc, timeout=30)
        # The agent leaves its containers running on purpose (they survive its restarts).
        labels = list(getattr(self, "runner_ids", []))
        if self.runner is not None:
            labels.append(self.container_label)
        for label in labels:
            covetest.remove_containers(label)
        self.proc = None
        self.runner = None


@pytest.fixture(scope="session")
def cove():
    with tempfile.TemporaryDirectory(prefix="cove-sdk-") as d:
        c = Cove(d).start()
        yield c
        c.stop()


@pytest.fixture(scope="session")
def daytona(cove):
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=cove.api_key, api_url=cove.api_url))


@pytest.fixture(scope="session")
def other_org_key(cove):
    """An API key of another user's organization: its sandboxes are not the admin's, and it must
    never see or touch theirs."""
    jwt = covetest.mint_jwt(JWT_SECRET, f"other-{uuid.uuid4().hex[:8]}")
    user = {"Authorization": f"Bearer {jwt}"}
    r = requests.get(f"{cove.api_url}/organizations", headers=user, timeout=30)
    assert r.status_code == 200 and r.json(), r.text
    org = r.json()[0]["id"]
    r = requests.post(f"{cove.api_url}/api-keys",
                      json={"name": "other", "permissions": ["write:sandboxes", "delete:sandboxes"]},
                      headers={**user, "X-Daytona-Organization-Id": org}, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()["value"]


# `from conftest import ...` in this directory's test files means this module.
pytest_collectstart = covetest.bind_conftest(sys.modules[__name__])
