"""Lifecycle automation with the official `daytona` SDK (issue 15): auto-stop after
`set_autostop_interval`, `refresh_activity()`, `archive()` and `start()` from archived with the
files back, auto-archive and auto-delete of stopped sandboxes, an ephemeral create deleted instead
of stopped, and `recover()` of a sandbox whose runner was lost, on the other runner, from its last
backup in the internal registry (the API-level counterpart, archives restored on another runner
included: `functions/lifecycle/tests/recovery.rs`); `ttl_minutes` and `set_ttl()` deleting a
sandbox whatever its state, and `queue_timeout`: a create that waits for a runner, raising
`DaytonaQueueTimeoutError` when none frees up in time.

A `cove up` of its own (not the session's): one lifecycle minute lasts MINUTE_SECS seconds
(`lifecycle_minute_secs`, a test-only time scale), which would stop the other modules' sandboxes;
a runner silent for LOST_MINUTES of them is given up (`runner_lost_minutes`).
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests
from daytona import (CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig, DaytonaNotFoundError,
                     DaytonaQueueTimeoutError, SandboxState)

import covetest
from conftest import Cove

MINUTE_SECS = 2
LOST_MINUTES = 5
VARIABLES = {"SPIN_VARIABLE_LIFECYCLE_MINUTE_SECS": str(MINUTE_SECS),
             "SPIN_VARIABLE_RUNNER_LOST_MINUTES": str(LOST_MINUTES)}


@pytest.fixture(scope="module")
def scaled_cove():
    before = {k: os.environ.get(k) for k in VARIABLES}
    os.environ.update(VARIABLES)
    try:
        with tempfile.TemporaryDirectory(prefix="cove-sdk-lifecycle-") as d:
            c = Cove(d).start()
            try:
                yield c
            finally:
                c.stop()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def scaled(scaled_cove):
    return Daytona(DaytonaConfig(api_key=scaled_cove.api_key, api_url=scaled_cove.api_url))


def wait_for(sb, want, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sb.refresh_data()
        if sb.state == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{sb.id} is {sb.state}, not {want}")


def test_autostop_after_the_interval_and_refresh_activity(scaled):
    sb = scaled.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    sb.set_autostop_interval(1)
    assert sb.auto_stop_interval == 1
    sb.refresh_activity()
    started = time.monotonic()
    wait_for(sb, SandboxState.STOPPED)
    assert time.monotonic() - started >= MINUTE_SECS - 0.5
    sb.delete()


def test_archive_then_start_brings_the_files_back(scaled):
    sb = scaled.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    sb.fs.upload_file(b"kept across the archive\n", "/tmp/kept.txt")
    sb.stop()
    sb.archive()
    wait_for(sb, SandboxState.ARCHIVED)
    sb.start()
    assert sb.state == SandboxState.STARTED
    assert sb.fs.download_file("/tmp/kept.txt") == b"kept across the archive\n"
    sb.delete()


def test_auto_archive_and_auto_delete_of_stopped_sandboxes(scaled):
    archived = scaled.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    deleted = scaled.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    archived.set_auto_archive_interval(1)
    deleted.set_auto_delete_interval(1)
    assert (archived.auto_archive_interval, deleted.auto_delete_interval) == (1, 1)
    archived.stop()
    deleted.stop()
    wait_for(archived, SandboxState.ARCHIVED)
    deadline = time.monotonic() + 90
    while True:
        try:
            scaled.get(deleted.id)
        except DaytonaNotFoundError:
            break
        assert time.monotonic() < deadline, "not auto-deleted"
        time.sleep(0.5)
    archived.delete()


def test_an_ephemeral_sandbox_is_deleted_instead_of_stopped(scaled):
    sb = scaled.create(CreateSandboxFromSnapshotParams(ephemeral=True, auto_stop_interval=1))
    assert sb.auto_delete_interval == 0
    deadline = time.monotonic() + 90
    while True:
        try:
            scaled.get(sb.id)
        except DaytonaNotFoundError:
            return
        assert time.monotonic() < deadline, "the ephemeral sandbox is still there"
        time.sleep(0.5)



def runner_of(cove, sandbox_id):
    r = cove._admin("GET", f"/sandbox/{sandbox_id}")
    assert r.status_code == 200, r.text
    return r.json()["runnerId"]


def set_unschedulable(cove, runner_id, value):
    r = cove._admin("PATCH", f"/runners/{runner_id}/scheduling", json={"unschedulable": value})
    assert r.status_code == 200, r.text


class LostRunner:
    """A second Docker runner agent, started as `cove up` starts its own (`crates/local`'s
    runner supervisor) and as `crates/testkit` attaches one: `--runner-id` is the registered
    runner's id (the `cove.runner` label of its containers), the token in `COVE_RUNNER_TOKEN`, the
    default snapshot, no `COVE_RUNNER_*` leaking in from the environment.

    Its data dir is a short one under /tmp: the toolbox socket is
    `<data-dir>/sandboxes/<sandbox id>/toolbox.sock`, and a unix socket path has at most 107 bytes
    (under pytest's `tmp_path` it is longer: the create ends in error, "the toolbox of sandbox …
    is not reachable: path must be shorter than SUN_LEN" in the agent's log)."""

    def __init__(self, cove):
        r = cove._admin("POST", "/runners", json={"regionId": "us", "name": f"lost-{uuid.uuid4().hex[:8]}"})
        assert r.status_code in (200, 201), r.text
        reg = r.json()
        self.id = reg["id"]
        self.data_dir = tempfile.mkdtemp(prefix="cove-lost-")
        self.log_path = os.path.join(self.data_dir, "stderr.log")
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("COVE_RUNNER_") or k in ("COVE_CONTROL_PLANE_URL", "COVE_TOOLBOX_BIN"))}
        env.update(COVE_RUNNER_TOKEN=reg["apiKey"], RUST_LOG="warn", NO_COLOR="1")
        toolbox = os.environ.get("COVE_TOOLBOX_BIN") or str(
            covetest.target_dir() / "x86_64-unknown-linux-musl/release/cove-toolbox")
        if os.path.isfile(toolbox):
            env["COVE_TOOLBOX_BIN"] = toolbox
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [covetest.binary("cove-runner"), "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(self.data_dir, "agent"), "--runner-id", self.id,
             "--control-plane-url", cove.base, "--heartbeat-secs", "1",
             # `cove up`'s `--default-snapshot` (its default).
             "--snapshot", "cove-sandbox-base:latest"],
            stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL, env=env,
        )

    def stderr(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def wait_ready(self, cove, timeout=120):
        deadline = time.monotonic() + timeout
        while not any(x["id"] == self.id and x["state"] == "ready" for x in cove._admin("GET", "/runners").json()):
            assert self.proc.poll() is None, f"cove-runner exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"the second runner never became ready: {self.stderr()}"
            time.sleep(0.5)

    def lose(self):
        """Lost for good: the agent is killed (no shutdown) and its containers are removed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        covetest.remove_containers(self.id)
        self.log.close()
        # A killed agent leaves its bind mount of `<data-dir>/sandboxes` behind.
        subprocess.run(["umount", "-l", os.path.join(self.data_dir, "agent", "sandboxes")], capture_output=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def test_recover_after_the_runner_is_lost(scaled_cove, scaled):
    own = list(scaled_cove.runner_ids)
    lost = LostRunner(scaled_cove)
    try:
        lost.wait_ready(scaled_cove)
        # On the second runner: cove up's takes no sandbox meanwhile.
        for rid in own:
            set_unschedulable(scaled_cove, rid, True)
        try:
            sb = scaled.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
        finally:
            for rid in own:
                set_unschedulable(scaled_cove, rid, False)
        assert runner_of(scaled_cove, sb.id) == lost.id
        sb.fs.upload_file(b"in the last backup\n", "/home/daytona/kept.txt")
        # A backup of the running sandbox (409 while a periodic one runs: then it waits for it).
        deadline = time.monotonic() + 120
        while True:
            r = requests.post(f"{scaled_cove.api_url}/sandbox/{sb.id}/backup",
                              headers={"Authorization": f"Bearer {scaled_cove.api_key}"}, timeout=60)
            if r.status_code == 200:
                break
            assert r.status_code == 409 and time.monotonic() < deadline, r.text
            time.sleep(1)
        deadline = time.monotonic() + 120
        while sb.backup_state != "Completed":
            assert time.monotonic() < deadline, f"backup is {sb.backup_state}"
            time.sleep(0.5)
            sb.refresh_data()
    except BaseException:
        print(lost.stderr())
        raise
    finally:
        lost.lose()
    # Past `runner_lost_minutes` of silence its sandbox is given up, recoverable from the backup.
    wait_for(sb, SandboxState.ERROR, timeout=4 * (15 + LOST_MINUTES * MINUTE_SECS))
    assert sb.recoverable is True, sb.error_reason
    sb.recover(timeout=120)
    assert sb.state == SandboxState.STARTED
    assert runner_of(scaled_cove, sb.id) in own
    assert sb.fs.download_file("/home/daytona/kept.txt") == b"in the last backup\n"
    sb.delete()


def set_all_unschedulable(cove, value):
    r = cove._admin("GET", "/runners")
    assert r.status_code == 200, r.text
    for runner in r.json():
        set_unschedulable(cove, runner["id"], value)


def test_ttl_deletes_the_sandbox_whatever_its_state(scaled):
    sb = scaled.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0, ttl_minutes=600))
    assert sb.auto_destroy_at is not None
    sb.set_ttl(0)
    sb.refresh_data()
    assert sb.auto_destroy_at is None
    sb.stop()
    sb.set_ttl(1)
    sb.refresh_data()
    assert sb.auto_destroy_at is not None and sb.state == SandboxState.STOPPED
    deadline = time.monotonic() + 60
    while True:
        try:
            scaled.get(sb.id)
        except DaytonaNotFoundError:
            break
        assert time.monotonic() < deadline, "the TTL did not delete the stopped sandbox"
        time.sleep(0.5)


def test_a_create_waits_for_a_runner_until_its_queue_timeout(scaled_cove, scaled):
    set_all_unschedulable(scaled_cove, True)
    try:
        began = time.monotonic()
        with pytest.raises(DaytonaQueueTimeoutError, match="waiting 1 minute for a runner"):
            scaled.create(CreateSandboxFromSnapshotParams(queue_timeout=1), timeout=60)
        assert time.monotonic() - began >= MINUTE_SECS
        # A runner frees up within the timeout: the same create succeeds on it.
        freed = threading.Timer(2 * MINUTE_SECS, set_all_unschedulable, (scaled_cove, False))
        freed.start()
        sb = scaled.create(CreateSandboxFromSnapshotParams(queue_timeout=30, auto_stop_interval=0), timeout=120)
        freed.join()
    finally:
        set_all_unschedulable(scaled_cove, False)
    assert sb.state == SandboxState.STARTED and sb.queue_timed_out_at is None
    assert sb.process.exec("echo placed").result.strip() == "placed"
    sb.delete()
