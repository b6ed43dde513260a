"""The official TypeScript SDK (`@daytonaio/sdk`, pinned in tests/sdk-ts/package.json and
installed by the project's scripts) against this session's `cove up`: node runs
tests/sdk-ts/flow.mjs with only DAYTONA_API_URL and DAYTONA_API_KEY, as a user's program would.
The script asserts every step itself (create, exec, codeRun in Python and TypeScript sandboxes,
files, the code interpreter, a PTY, metrics, signed URLs, list filters and sort, stop/start)."""

import os
import pathlib
import shutil
import subprocess
import uuid

from daytona import ListSandboxesQuery


SUITE = pathlib.Path(__file__).resolve().parents[1] / "sdk-ts"


def test_the_typescript_sdk_flow(cove, daytona):
    node = shutil.which("node")
    assert node, "node is installed by scripts/lib.sh (ensure_sdk_ts)"
    assert (SUITE / "node_modules" / "@daytonaio" / "sdk").is_dir(), "run scripts/test.sh (ensure_sdk_ts) first"
    run = uuid.uuid4().hex[:8]
    env = {**os.environ, "DAYTONA_API_URL": cove.api_url, "DAYTONA_API_KEY": cove.api_key, "COVE_TS_RUN": run}
    env.pop("DAYTONA_JWT_TOKEN", None)
    try:
        p = subprocess.run([node, str(SUITE / "flow.mjs")], cwd=SUITE, env=env, capture_output=True,
                           text=True, timeout=600)
    finally:
        # The script deletes what it made; a crash of node leaves it to this.
        for sb in daytona.list(ListSandboxesQuery(labels={"cove-ts-run": run})):
            sb.delete()
    steps = [l for l in p.stdout.splitlines() if l.startswith("ok ")]
    assert p.returncode == 0, f"passed: {steps}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-6000:]}"
    assert "all steps passed" in p.stdout
    assert len(steps) >= 10, steps
