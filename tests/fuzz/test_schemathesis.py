"""A bounded schemathesis run against `cove up` (simulated runner) over `openapi/control-plane.json`.

Checks: no server errors, every status code documented, every response body valid against its
documented schema. Authenticated as the bootstrap admin user with a JWT (organizations and users
routes take JWTs only), so every route is reached with real rights; the bootstrap admin *key* is
never sent and must still work afterwards. Non-destructive operations run first; DELETE operations
run last, in a second pass.

Bounds (CI time): SCHEMATHESIS_MAX_EXAMPLES examples per operation (default 12) and
SCHEMATHESIS_MAX_TIME seconds per pass (default 100).
"""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import covetest  # noqa: E402

ROOT = covetest.ROOT
SECRET = covetest.new_secret("fuzz-")
ADMIN_USER = "cove-admin"


def schemathesis_bin():
    exe = pathlib.Path(sys.executable).with_name("schemathesis")
    assert exe.exists(), f"{exe} is missing: schemathesis comes from tests/requirements.txt"
    return str(exe)


@pytest.fixture(scope="module")
def cove():
    with tempfile.TemporaryDirectory(prefix="cove-fuzz-") as d:
        env = dict(os.environ)
        env["SPIN_VARIABLE_JWT_HS256_SECRET"] = SECRET
        env.setdefault("RUST_LOG", "warn")
        c = covetest.CoveProcess(pathlib.Path(d) / "cove.stderr.log")
        c.launch(
            ROOT / "spin.toml",
            ["--data-dir", str(pathlib.Path(d) / "data"), "--no-build", "--runner-runtime", "fake",
             "--runner-warm-pool", "0"],
            env,
            timeout=600,
        )
        yield c
        c.stop()


# An internal error of hypothesis's lambda-source inspection, unrelated to the API under test.
HYPOTHESIS_CRASH = "AST constructor recursion depth mismatch"


def run(cove, token, *filters):
    cmd = [
        schemathesis_bin(), "run", str(ROOT / "openapi/control-plane.json"),
        "--url", cove.base,
        "-H", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"),
        "--max-time", os.environ.get("SCHEMATHESIS_MAX_TIME", "100"),
        "--workers", "2",
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261201"),
        # No example database: a run does not replay what an earlier run in the same checkout found.
        "--generation-database", "none",
        # A generator health check, not a check of the API: with --workers 2 and a time bound,
        # hypothesis sometimes rejects too many of its own drafts for a plain string path
        # parameter (seen in CI on POST /api/users/{id}/regenerate-key-pair) and errors out.
        # The examples it does generate are still checked.
        "--suppress-health-check", "filter_too_much",
        *filters,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    text = out.stdout + out.stderr
    if out.returncode != 0 and "FAILURES" not in text and HYPOTHESIS_CRASH in text:
        # The fuzzer itself crashed (a CPython/hypothesis race in its own source inspection,
        # seen with --workers 2), not a check against cove: run the pass once more.
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
        text = out.stdout + out.stderr
    # The details of failed checks and of errors (a request that failed in the client) are in
    # their own sections; the summary comes last.
    sections = [text[i:i + 15000] for i in (text.find("FAILURES"), text.find("ERRORS")) if i >= 0]
    summary = "\n".join(sections) + "\n" + text[-3000:]
    return out.returncode, summary


def assert_clean(code, summary, cove):
    assert code == 0, f"schemathesis found failures:\n{summary}\n--- cove stderr (tail) ---\n{cove.tail()[-1500:]}"


def test_no_server_errors_and_documented_answers(cove):
    token = covetest.mint_jwt(SECRET, ADMIN_USER, email="admin@cove.local", ttl=3600)
    code, summary = run(cove, token, "--exclude-method", "DELETE")
    assert_clean(code, summary, cove)
    # Destructive operations last.
    code, summary = run(cove, token, "--include-method", "DELETE")
    assert_clean(code, summary, cove)
    # The bootstrap admin key survived the run.
    r = requests.get(f"{cove.api_url}/api-keys/current",
                     headers={"Authorization": f"Bearer {cove.api_key}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "cove-admin"
