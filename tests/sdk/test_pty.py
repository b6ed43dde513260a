"""PTY terminals with the official SDK against `cove up`: `process.create_pty_session` (the
`create-connect` websocket through `toolboxProxyUrl`), input and output, resize seen by the
program in the terminal, the exit code, list/get/kill, a second client attached to the same
session, and the scrollback a reconnect gets.
"""

import time
import uuid

import pytest
import requests
from daytona import DaytonaError, PtySize


@pytest.fixture(scope="module")
def sandbox(daytona):
    sb = daytona.create()
    yield sb
    sb.delete()


def read_until(pty, needle, timeout=20):
    """Output of `pty` (bytes) until `needle` shows up, within `timeout` seconds: `wait` with a
    timeout returns while the terminal is still running and leaves it connected."""
    seen = bytearray()
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert time.monotonic() < deadline, f"no {needle!r} in {bytes(seen[-400:])!r}"
        pty.wait(on_data=seen.extend, timeout=0.3)
    return bytes(seen)


def test_write_read_resize_and_exit(sandbox):
    sid = f"pty-{uuid.uuid4().hex[:8]}"
    pty = sandbox.process.create_pty_session(id=sid, envs={"COVE_PTY": "from-envs"},
                                            pty_size=PtySize(cols=100, rows=30))
    try:
        assert pty.is_connected()
        pty.send_input("echo marker-$((6*7)) $COVE_PTY\n")
        out = read_until(pty, b"marker-42 from-envs")
        assert b"marker-42 from-envs" in out
        pty.send_input("stty size\n")
        assert b"30 100" in read_until(pty, b"30 100")
        info = pty.resize(PtySize(cols=132, rows=43))
        assert (info.cols, info.rows) == (132, 43)
        pty.send_input("stty size\n")
        assert b"43 132" in read_until(pty, b"43 132")
        listed = {s.id: s for s in sandbox.process.list_pty_sessions()}
        assert sid in listed and listed[sid].active
        got = sandbox.process.get_pty_session_info(sid)
        assert (got.cols, got.rows) == (132, 43)
        pty.send_input("exit 3\n")
        result = pty.wait(timeout=20)
        assert result.exit_code == 3, result
    finally:
        pty.disconnect()


def test_two_clients_and_a_reconnect_see_the_output(sandbox):
    sid = f"pty-{uuid.uuid4().hex[:8]}"
    first = sandbox.process.create_pty_session(id=sid)
    second = sandbox.process.connect_pty_session(sid)
    try:
        first.send_input("echo from-first-$((1+1))\n")
        assert b"from-first-2" in read_until(first, b"from-first-2")
        assert b"from-first-2" in read_until(second, b"from-first-2")
        # Input from the second reaches the same shell.
        second.send_input("echo from-second-$((2+2))\n")
        assert b"from-second-4" in read_until(first, b"from-second-4")
        second.disconnect()
        # A new client gets the scrollback of the session's earlier output.
        third = sandbox.process.connect_pty_session(sid)
        assert b"from-first-2" in read_until(third, b"from-first-2", timeout=10)
        third.disconnect()
    finally:
        first.kill()
        first.disconnect()
    deadline = time.monotonic() + 20
    while True:
        sessions = {s.id: s for s in sandbox.process.list_pty_sessions()}
        if sid not in sessions or not sessions[sid].active:
            break
        assert time.monotonic() < deadline, sessions[sid]
        time.sleep(0.5)


def test_bad_ids_sizes_and_other_tenants_are_refused(sandbox, cove, other_org_key):
    with pytest.raises(DaytonaError):
        sandbox.process.get_pty_session_info("no-such-pty")
    with pytest.raises(DaytonaError):
        sandbox.process.kill_pty_session("no-such-pty")
    with pytest.raises(DaytonaError):
        sandbox.process.connect_pty_session("no-such-pty")
    proxy = sandbox.toolbox_proxy_url.rstrip("/")
    own = {"Authorization": f"Bearer {cove.api_key}"}
    sid = f"pty-{uuid.uuid4().hex[:8]}"
    r = requests.post(f"{proxy}/{sandbox.id}/process/pty", json={"id": sid, "cols": 0, "rows": 24},
                      headers=own, timeout=30)
    assert r.status_code == 400, r.text
    r = requests.post(f"{proxy}/{sandbox.id}/process/pty", json={"id": sid, "cols": 80, "rows": 24},
                      headers=own, timeout=30)
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{proxy}/{sandbox.id}/process/pty", json={"id": sid}, headers=own, timeout=30)
    assert r.status_code == 409, r.text
    r = requests.post(f"{proxy}/{sandbox.id}/process/pty/{sid}/resize", json={"cols": 5000, "rows": 1},
                      headers=own, timeout=30)
    assert r.status_code == 400, r.text
    other = {"Authorization": f"Bearer {other_org_key}"}
    for method, path in (("GET", "/process/pty"), ("GET", f"/process/pty/{sid}"),
                         ("DELETE", f"/process/pty/{sid}")):
        r = requests.request(method, f"{proxy}/{sandbox.id}{path}", headers=other, timeout=30)
        assert r.status_code == 404, (path, r.text)
    assert sandbox.process.get_pty_session_info(sid).id == sid
    sandbox.process.kill_pty_session(sid)
