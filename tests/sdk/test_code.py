"""Running code as AI-agent frameworks do, with the official SDK against `cove up`: the default
image's interpreters (`python -c`, `node -e`, `code_run` in Python, JavaScript and TypeScript
sandboxes) and the stateful code interpreter (`sandbox.code_interpreter`: state across calls,
isolated contexts, errors with name/value/traceback, streaming, timeouts, deletion).

The interpreter's `execute` is a websocket: it goes through `toolboxProxyUrl` (cove-proxy's
`/toolbox`), the path `cove up` hands out by default.
"""

import time
import uuid

import pytest
import requests
from daytona import CreateSandboxFromSnapshotParams, DaytonaError, DaytonaTimeoutError


@pytest.fixture(scope="module")
def sandbox(daytona):
    sb = daytona.create()
    yield sb
    sb.delete()


def test_the_default_image_runs_python_node_and_sudo(sandbox):
    r = sandbox.process.exec('python -c "import sys; print(sys.version_info[0] * 10 + 1)"')
    assert (r.exit_code, r.result.strip()) == (0, "31"), r.result
    r = sandbox.process.exec("python3 -m venv /tmp/v && /tmp/v/bin/python -c 'import sys; print(sys.prefix)'")
    assert (r.exit_code, r.result.strip()) == (0, "/tmp/v"), r.result
    r = sandbox.process.exec("node -e 'console.log([1, 2, 3].map(x => x * 7).join(\",\"))'")
    assert (r.exit_code, r.result.strip()) == (0, "7,14,21"), r.result
    r = sandbox.process.exec("sh -c 'npm --version && git --version && curl --version && cc --version'")
    assert r.exit_code == 0 and "git version" in r.result and "curl" in r.result, r.result
    r = sandbox.process.exec("sudo -n id -u")
    assert (r.exit_code, r.result.strip()) == (0, "0"), r.result
    r = sandbox.process.exec("id -un")
    assert r.result.strip() == "daytona", r.result


def test_code_run_in_python_javascript_and_typescript_sandboxes(daytona, sandbox):
    r = sandbox.process.code_run("import math\nprint(math.factorial(10))")
    assert (r.exit_code, r.result.strip()) == (0, "3628800"), r.result
    for language, code, want in (
        ("javascript", "const xs = [3, 4]; console.log(xs.reduce((a, b) => a * b, 10))", "120"),
        ("typescript", "const n: number = 6; const f = (k: number): number => k * 7; console.log(f(n))", "42"),
    ):
        sb = daytona.create(CreateSandboxFromSnapshotParams(language=language))
        try:
            r = sb.process.code_run(code)
            assert (r.exit_code, r.result.strip()) == (0, want), (language, r.result)
            bad = sb.process.code_run("throw new Error('boom-" + language + "')")
            assert bad.exit_code != 0 and f"boom-{language}" in bad.result, (language, bad.result)
        finally:
            sb.delete()


def test_interpreter_state_carries_over_in_the_default_context(sandbox):
    ci = sandbox.code_interpreter
    token = uuid.uuid4().hex
    r = ci.run_code(f"counter = 41\nsecret = '{token}'\nimport json")
    assert r.error is None and r.stdout == "", r
    r = ci.run_code("counter += 1\nprint(counter, json.dumps(secret))")
    assert r.error is None, r.error
    assert r.stdout == f'42 "{token}"\n', r.stdout
    # The default context is not listed and exists without a create.
    assert all(c.id != "default" for c in ci.list_contexts())


def test_contexts_are_isolated_and_deletable(sandbox, tmp_path):
    ci = sandbox.code_interpreter
    a = ci.create_context(cwd="/tmp")
    b = ci.create_context()
    try:
        assert a.id != b.id and a.cwd == "/tmp"
        assert a.language == "python"
        ids = {c.id for c in ci.list_contexts()}
        assert {a.id, b.id} <= ids
        ci.run_code("x = 'only-in-a'", context=a)
        r = ci.run_code("import os\nprint(x, os.getcwd())", context=a)
        assert r.stdout == "only-in-a /tmp\n", r
        r = ci.run_code("print(x)", context=b)
        assert r.error is not None and r.error.name == "NameError", r
        assert "x" in r.error.value
        r = ci.run_code("print(x)")
        assert r.error is not None and r.error.name == "NameError", r
    finally:
        ci.delete_context(a)
    assert a.id not in {c.id for c in ci.list_contexts()}
    with pytest.raises(DaytonaError):
        ci.run_code("print(1)", context=a)
    with pytest.raises(DaytonaError):
        ci.delete_context(a)
    ci.delete_context(b)


def test_errors_carry_name_value_and_traceback_and_streams_arrive_in_order(sandbox):
    ci = sandbox.code_interpreter
    r = ci.run_code("def f(n):\n    return 10 // n\nprint('before')\nf(0)")
    assert r.stdout == "before\n", r
    assert r.error.name == "ZeroDivisionError", r.error
    assert "division" in r.error.value
    assert "f(0)" in r.error.traceback or "line" in r.error.traceback, r.error.traceback
    r = ci.run_code("def broken(:\n  pass")
    assert r.error is not None and r.error.name == "SyntaxError", r.error
    seen = []
    r = ci.run_code(
        "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\nsys.stderr.write('done')",
        on_stdout=lambda m: seen.append(("out", m.output, time.monotonic())),
        on_stderr=lambda m: seen.append(("err", m.output, time.monotonic())),
    )
    assert r.stdout == "0\n1\n2\n" and r.stderr == "done", r
    outs = [s for s in seen if s[0] == "out"]
    assert "".join(s[1] for s in outs) == "0\n1\n2\n"
    # Streamed: the first line arrived well before the last.
    assert len(outs) >= 2 and outs[-1][2] - outs[0][2] > 0.2, outs
    # envs apply to that execution.
    r = ci.run_code("import os\nprint(os.environ.get('COVE_T'))", envs={"COVE_T": "set-here"})
    assert r.stdout == "set-here\n", r


def test_a_timeout_interrupts_and_the_context_stays_usable(sandbox):
    ci = sandbox.code_interpreter
    ctx = ci.create_context()
    try:
        ci.run_code("kept = 7", context=ctx)
        started = time.monotonic()
        with pytest.raises(DaytonaTimeoutError):
            ci.run_code("import time\ntime.sleep(60)", context=ctx, timeout=1)
        assert time.monotonic() - started < 30
        r = ci.run_code("print(kept * 6)", context=ctx)
        assert r.error is None and r.stdout == "42\n", r
    finally:
        ci.delete_context(ctx)


def test_interpreter_routes_refuse_other_tenants_and_bad_input(sandbox, cove, other_org_key):
    """The interpreter routes through the proxy: another org's key is refused, bad input is 4xx."""
    proxy = sandbox.toolbox_proxy_url.rstrip("/")
    url = f"{proxy}/{sandbox.id}/process/interpreter/context"
    own = {"Authorization": f"Bearer {cove.api_key}"}
    r = requests.post(url, json={"language": "cobol"}, headers=own, timeout=30)
    assert r.status_code == 400 and r.json()["message"], r.text
    r = requests.delete(f"{url}/no-such-context", headers=own, timeout=30)
    assert r.status_code == 404, r.text
    other = other_org_key
    for method, path in (("GET", "/process/interpreter/context"), ("POST", "/process/interpreter/context"),
                         ("DELETE", "/process/interpreter/context/default")):
        r = requests.request(method, f"{proxy}/{sandbox.id}{path}", json={},
                             headers={"Authorization": f"Bearer {other}"}, timeout=30)
        assert r.status_code == 404 and sandbox.id in r.json()["message"], (path, r.text)
    # And the owner's interpreter was not touched by those calls.
    assert sandbox.code_interpreter.run_code("print(40 + 2)").stdout == "42\n"

