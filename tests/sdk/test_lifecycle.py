"""Lifecycle automation with the official `daytona` SDK (issue 15): auto-stop after
`set_autostop_interval`, `refresh_activity()`, `archive()` and `start()` from archived with the
files back, auto-archive and auto-delete of stopped sandboxes, an ephemeral create deleted instead
of stopped. `recover()` after a lost runner is exercised through the API in
`functions/lifecycle/tests/recovery.rs` (two Docker runners).

A `cove up` of its own (not the session's): one lifecycle minute lasts MINUTE_SECS seconds
(`lifecycle_minute_secs`, a test-only time scale), which would stop the other modules' sandboxes;
"""

import os
import tempfile
import time

import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig, DaytonaNotFoundError, SandboxState

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

