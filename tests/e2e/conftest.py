"""Starts the real `cove` (embedded dynoxide + S3, the spin.toml components) for end-to-end tests."""

import os
import pathlib
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import covetest  # noqa: E402

ROOT = covetest.ROOT
JWT_SECRET = covetest.new_secret("e2e-")


class Cove(covetest.CoveProcess):
    """One `cove up` process on 127.0.0.1:<port chosen at run time>, without a runner."""

    def __init__(self, data_dir, extra_env=None):
        super().__init__(pathlib.Path(data_dir) / "cove.stderr.log")
        self.data_dir = data_dir
        self.extra_env = extra_env or {}

    def start(self, timeout=120):
        env = dict(os.environ)
        env["SPIN_VARIABLE_JWT_HS256_SECRET"] = JWT_SECRET
        env.update(self.extra_env)
        args = ["--data-dir", str(self.data_dir), "--no-build", "--no-runner"]
        return self.launch(ROOT / "spin.toml", args, env, timeout)

    def stderr_tail(self):
        return self.tail()


def mint_jwt(sub, email=None, name=None, ttl=600):
    return covetest.mint_jwt(JWT_SECRET, sub, email=email, name=name, ttl=ttl)


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


# `from conftest import ...` in this directory's test files means this module.
pytest_collectstart = covetest.bind_conftest(sys.modules[__name__])
