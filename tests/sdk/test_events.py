"""Real-time events (CONTRACT §11) as the official SDKs use them: a Socket.IO (Engine.IO v4)
websocket at `{DAYTONA_API_URL}/socket.io/` with `auth: {"token": ...}`, served by cove-proxy's
relay on the control plane's listener under `cove up`.

(a) The SDK's own handshake succeeds (`Sandbox._sub_id` set, its dispatcher connected, not failed);
(b) a raw `socketio.Client` with the admin's key gets `sandbox.created` (the SandboxDto) and
`sandbox.state.updated` / `sandbox.desired-state.updated` for a stop and a start, with the right
ids and states; (c) a client of another organization gets none of them (but its own); (d) a bad
token is refused at once with `connect_error`, not left hanging.
"""

import threading
import time
from urllib.parse import urlparse

import pytest
import requests
import socketio

EVENTS = ("sandbox.created", "sandbox.state.updated", "sandbox.desired-state.updated")


def endpoint(api_url):
    """The SDK's connection target: the API URL's origin and `{path}/socket.io/`."""
    p = urlparse(api_url.rstrip("/"))
    return f"{p.scheme}://{p.netloc}", f"{p.path.rstrip('/')}/socket.io/"


class Recorder:
    """A Socket.IO client that records every sandbox event it gets."""

    def __init__(self, api_url, token):
        self.api_url, self.token = api_url, token
        self.events = []
        self.refusals = []
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        for name in EVENTS:
            self.sio.on(name, self._handler(name))
        self.sio.on("connect_error", self._refused)

    def _handler(self, name):
        def record(data):
            with self.cond:
                self.events.append((name, data))
                self.cond.notify_all()
        return record

    def _refused(self, data):
        with self.cond:
            self.refusals.append(data)
            self.cond.notify_all()

    def connect(self):
        origin, path = endpoint(self.api_url)
        self.sio.connect(f"{origin}?source=cove-test", socketio_path=path, auth={"token": self.token},
                         transports=["websocket"], wait_timeout=10)
        return self

    def wait_for(self, pred, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hit = next((e for e in self.events if pred(*e)), None)
                if hit is not None:
                    return hit
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event within {timeout}s; got {self.events}")
                self.cond.wait(left)

    def about(self, sandbox_id):
        with self.cond:
            return [(n, d) for n, d in self.events if sandbox_id_of(d) == sandbox_id]

    def close(self):
        self.sio.disconnect()


def sandbox_id_of(data):
    """Where the SDK finds the resource id: `data.sandbox.id`, else `data.id`."""
    if not isinstance(data, dict):
        return None
    return (data.get("sandbox") or {}).get("id") or data.get("id")


def state_update(sandbox_id, new_state):
    return lambda name, data: (name == "sandbox.state.updated" and sandbox_id_of(data) == sandbox_id
                               and data.get("newState") == new_state)


@pytest.fixture(scope="module")
def watched(cove, daytona, other_org_key):
    """Two clients connected first (the admin's organization, another one), then a sandbox of the
    admin's created, stopped and started, and one of the other organization's created."""
    mine = Recorder(cove.api_url, cove.api_key).connect()
    theirs = Recorder(cove.api_url, other_org_key).connect()
    sb = daytona.create()
    sb.stop()
    sb.start()
    auth = {"Authorization": f"Bearer {other_org_key}"}
    r = requests.post(f"{cove.api_url}/sandbox", headers=auth, json={}, timeout=180)
    assert r.status_code == 200, r.text
    other_id = r.json()["id"]
    yield mine, theirs, sb, other_id
    mine.close()
    theirs.close()
    sb.delete()
    requests.delete(f"{cove.api_url}/sandbox/{other_id}", headers=auth, timeout=60)


def test_the_sdk_subscribes_over_socket_io(daytona):
    sb = daytona.create()
    try:
        assert sb._sub_id is not None
        dispatcher = daytona._event_dispatcher
        deadline = time.monotonic() + 10
        while not dispatcher.is_connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dispatcher.is_connected, dispatcher.fail_error
        assert not dispatcher.is_failed, dispatcher.fail_error
        # A wait that events can end: stop returns with the sandbox stopped.
        sb.stop()
        assert sb.state.value == "stopped"
    finally:
        sb.delete()


def test_events_of_create_stop_and_start_arrive(watched):
    mine, _, sb, _ = watched
    _, created = mine.wait_for(lambda n, d: n == "sandbox.created" and sandbox_id_of(d) == sb.id)
    assert created["id"] == sb.id and created["name"] == sb.name
    assert "toolboxProxyUrl" in created and "desiredState" in created, created
    _, stopped = mine.wait_for(state_update(sb.id, "stopped"))
    assert stopped["sandbox"]["id"] == sb.id
    assert stopped["oldState"] in ("stopping", "started"), stopped
    mine.wait_for(state_update(sb.id, "started"))
    _, desired = mine.wait_for(lambda n, d: n == "sandbox.desired-state.updated"
                               and sandbox_id_of(d) == sb.id and d.get("newDesiredState") == "stopped")
    assert desired["oldDesiredState"] == "started", desired
    names = [n for n, _ in mine.about(sb.id)]
    assert names.index("sandbox.created") < names.index("sandbox.state.updated"), names
    # Each event once (the relay reads a lookback window again).
    with mine.cond:
        keys = [(n, repr(sorted((k, str(v)) for k, v in d.items() if k != "sandbox")))
                for n, d in mine.events if sandbox_id_of(d) == sb.id and n != "sandbox.created"]
    assert len(keys) == len(set(keys)), keys


def test_another_organization_sees_none_of_them(watched):
    mine, theirs, sb, other_id = watched
    mine.wait_for(state_update(sb.id, "started"))
    # Its own sandbox's events arrive: the connection works.
    theirs.wait_for(lambda n, d: n == "sandbox.created" and sandbox_id_of(d) == other_id)
    time.sleep(1.5)  # a few polls more
    assert theirs.about(sb.id) == []
    assert mine.about(other_id) == []


def test_a_bad_token_is_refused_with_connect_error(cove):
    client = Recorder(cove.api_url, "not-a-key")
    started = time.monotonic()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()
    assert time.monotonic() - started < 8, "refused promptly"
    assert client.refusals, "connect_error reached the client"
    assert "Unauthorized" in str(client.refusals[0]), client.refusals
    assert not client.sio.connected
