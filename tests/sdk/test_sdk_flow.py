"""The flow of SDK_FLOW.md with the official `daytona` SDK, unmodified, against `cove up`.

The steps share one sandbox and run in file order (pytest keeps definition order); each asserts what
the SDK returned.
"""

import os
import re
import time
import uuid

import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    DaytonaNotFoundError,
    ListSandboxesQuery,
    SandboxState,
    SessionExecuteRequest,
)

RUN = uuid.uuid4().hex[:12]
# Values one step leaves for a later one.
SEEN = {}


@pytest.fixture(scope="module")
def sandbox(daytona):
    sb = daytona.create()
    yield sb
    try:
        sb.delete()
    except Exception:  # noqa: BLE001 - already deleted by test_delete
        pass


def test_create_returns_a_started_sandbox(daytona, sandbox, cove):
    assert sandbox.state == SandboxState.STARTED
    assert re.fullmatch(r"[0-9a-f-]{36}", sandbox.id)
    assert sandbox.labels.get("code-toolbox-language") == "python"
    proxy = next((l.split("=", 1)[1] for l in cove.lines if l.startswith("COVE_PROXY_URL=")), None)
    via_proxy = os.environ.get("COVE_TOOLBOX_VIA", "proxy") == "proxy"
    assert sandbox.toolbox_proxy_url == (f"{proxy}/toolbox" if via_proxy else f"{cove.base}/toolbox")
    same = daytona.get(sandbox.id)
    assert same.id == sandbox.id and same.state == SandboxState.STARTED


def test_exec(sandbox):
    r = sandbox.process.exec("echo hi")
    assert r.exit_code == 0
    assert r.result.strip() == "hi"
    assert r.artifacts.stdout.strip() == "hi"
    r = sandbox.process.exec("echo boom >&2; exit 7")
    assert r.exit_code == 7
    assert "boom" in r.result
    r = sandbox.process.exec("pwd; echo $GREETING", cwd="/tmp", env={"GREETING": "hello"})
    assert r.exit_code == 0
    assert r.result.split() == ["/tmp", "hello"]


def test_upload_download_list(sandbox):
    payload = os.urandom(256 * 1024) + b"\x00\r\n--boundary-lookalike--\r\n"
    sandbox.fs.upload_file(payload, f"/tmp/sdk-{RUN}/data.bin")
    sandbox.fs.upload_file(b"hello cove\n", f"/tmp/sdk-{RUN}/a.txt")
    assert sandbox.fs.download_file(f"/tmp/sdk-{RUN}/data.bin") == payload
    assert sandbox.fs.download_file(f"/tmp/sdk-{RUN}/a.txt") == b"hello cove\n"
    files = {f.name: f for f in sandbox.fs.list_files(f"/tmp/sdk-{RUN}")}
    assert set(files) == {"data.bin", "a.txt"}
    assert files["data.bin"].size == len(payload) and not files["data.bin"].is_dir
    assert files["a.txt"].size == 11
    # The upload overwrote nothing else and the sandbox sees the same bytes.
    r = sandbox.process.exec(f"wc -c < /tmp/sdk-{RUN}/data.bin")
    assert int(r.result.strip()) == len(payload)


def test_git_clone_from_a_local_bare_repo(sandbox):
    setup = (
        "set -e; rm -rf /tmp/r.git /tmp/src; "
        "git init -q --bare --initial-branch=main /tmp/r.git; "
        "git init -q -b main /tmp/src; cd /tmp/src; "
        "echo 'cloned through cove' > README.md; git add README.md; "
        "git -c user.email=sdk@example.com -c user.name=sdk commit -q -m init; "
        "git push -q /tmp/r.git main"
    )
    r = sandbox.process.exec(setup)
    assert r.exit_code == 0, r.result
    sandbox.git.clone("file:///tmp/r.git", f"/tmp/clone-{RUN}")
    assert sandbox.fs.download_file(f"/tmp/clone-{RUN}/README.md") == b"cloned through cove\n"
    status = sandbox.git.status(f"/tmp/clone-{RUN}")
    assert status.current_branch == "main"
    assert status.file_status == []


def test_sessions_sync_and_async(sandbox):
    sid = f"s-{RUN}"
    sandbox.process.create_session(sid)
    r = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="export FOO=bar; echo set"))
    assert r.exit_code == 0 and r.output.strip() == "set"
    r = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="echo $FOO; echo err >&2"))
    assert r.exit_code == 0
    assert r.stdout.strip() == "bar"
    assert r.stderr.strip() == "err"

    started = sandbox.process.execute_session_command(
        sid, SessionExecuteRequest(command="sleep 1; echo async-done; exit 3", run_async=True)
    )
    assert started.cmd_id
    deadline = time.monotonic() + 30
    while True:
        cmd = sandbox.process.get_session_command(sid, started.cmd_id)
        if cmd.exit_code is not None:
            break
        assert time.monotonic() < deadline, "async command never finished"
        time.sleep(0.2)
    assert cmd.exit_code == 3
    logs = sandbox.process.get_session_command_logs(sid, started.cmd_id)
    assert logs.output.strip() == "async-done"
    assert logs.stdout.strip() == "async-done"
    session = sandbox.process.get_session(sid)
    assert [c.id for c in session.commands][-1] == started.cmd_id
    sandbox.process.delete_session(sid)


def test_preview_link(sandbox):
    link = sandbox.get_preview_link(3000)
    assert sandbox.id in link.url
    assert "3000" in link.url
    assert re.fullmatch(r"[a-z0-9]{32}", link.token)
    again = sandbox.get_preview_link(3000)
    assert again.token == link.token and again.url == link.url
    SEEN["preview_token"] = link.token  # compared after the restart below


def test_stop_and_start(daytona, sandbox):
    sandbox.stop()
    assert sandbox.state == SandboxState.STOPPED
    assert daytona.get(sandbox.id).state == SandboxState.STOPPED
    # The toolbox refuses a stopped sandbox with a 4xx the SDK surfaces as an error.
    with pytest.raises(Exception) as refused:
        sandbox.process.exec("echo should-not-run")
    assert "not running" in str(refused.value).lower()

    sandbox.start()
    assert sandbox.state == SandboxState.STARTED
    r = sandbox.process.exec("echo back")
    assert r.exit_code == 0 and r.result.strip() == "back"
    # Files written before the stop are still there.
    assert sandbox.fs.download_file(f"/tmp/sdk-{RUN}/a.txt") == b"hello cove\n"
    # Every start issues a new preview token (Daytona regenerates authToken on start).
    assert sandbox.get_preview_link(3000).token != SEEN["preview_token"]


def test_list_with_labels(daytona, sandbox):
    labelled = daytona.create(CreateSandboxFromSnapshotParams(labels={"cove-sdk-run": RUN}))
    try:
        assert labelled.state == SandboxState.STARTED
        found = list(daytona.list(ListSandboxesQuery(labels={"cove-sdk-run": RUN})))
        assert [s.id for s in found] == [labelled.id]
        assert found[0].labels["cove-sdk-run"] == RUN
        everything = {s.id for s in daytona.list()}
        assert {sandbox.id, labelled.id} <= everything
    finally:
        labelled.delete()


def test_delete(daytona, sandbox):
    sandbox.delete()
    deadline = time.monotonic() + 60
    while True:
        try:
            daytona.get(sandbox.id)
        except DaytonaNotFoundError:
            break
        assert time.monotonic() < deadline, "deleted sandbox is still readable"
        time.sleep(0.5)
    assert sandbox.id not in {s.id for s in daytona.list()}
