"""Starts the real `cove` (embedded dynoxide + S3, the spin.toml components) for end-to-end tests."""

import os
import pathlib
import queue
import subprocess
import tempfile
import threading
import time

import jwt as pyjwt
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
JWT_SECRET = "e2e-" + os.urandom(24).hex()


class Cove:
    """One `cove up` process on 127.0.0.1:<port chosen at run time>."""

    def __init__(self, data_dir, extra_env=None):
        self.data_dir = data_dir
        self.extra_env = extra_env or {}
        self.proc = None
        self.api_url = None
        self.api_key = None
        self.lines = []

    def start(self, timeout=120):
        binary = os.environ.get("COVE_BIN", str(ROOT / "target/release/cove"))
        env = dict(os.environ)
        env["SPIN_VARIABLE_JWT_HS256_SECRET"] = JWT_SECRET
        env.update(self.extra_env)
        self.stderr = open(pathlib.Path(self.data_dir) / "cove.stderr.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "up", "--manifest", str(ROOT / "spin.toml"), "--listen", "127.0.0.1:0",
             "--data-dir", str(self.data_dir), "--no-build", "--no-runner"],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
        )
        lines = queue.Queue()

        def pump():
            for raw in self.proc.stdout:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.api_url, self.api_key = None, None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise AssertionError(f"cove did not get ready: {self.lines} {self.stderr_tail()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"cove exited early: {self.lines} {self.stderr_tail()}")
            self.lines.append(line)
            if line.startswith("DAYTONA_API_URL="):
                self.api_url = line.split("=", 1)[1]
            elif line.startswith("DAYTONA_API_KEY="):
                self.api_key = line.split("=", 1)[1]
            elif line.strip() == "cove ready":
                break
        assert self.api_url and self.api_url.startswith("http://127.0.0.1:") and self.api_url.endswith("/api")
        return self

    def stderr_tail(self):
        try:
            return (pathlib.Path(self.data_dir) / "cove.stderr.log").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def mint_jwt(sub, email=None, name=None, ttl=600):
    now = int(time.time())
    claims = {"sub": sub, "email": email or f"{sub}@example.com", "name": name or sub, "iat": now, "exp": now + ttl}
    return pyjwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.fixture(scope="session")
def cove():
    with tempfile.TemporaryDirectory(prefix="cove-e2e-") as d:
        c = Cove(d).start()
        yield c
        c.stop()


@pytest.fixture
def fresh_data_dir():
    with tempfile.TemporaryDirectory(prefix="cove-e2e-") as d:
        yield d
