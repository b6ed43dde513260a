"""Volumes through the official Daytona SDK, unmodified, against `cove up` (issue 14): the volume is
provisioned on cove's embedded S3 by the lifecycle sweep and FUSE-mounted (rclone) by the runner agent.

`volume.get(name, create=True)` until `ready`; sandbox A writes files (one 1 MiB random) on the volume;
sandbox B, with the same volume, reads them byte for byte; both deleted, a third sandbox still sees them;
`volume.list()`; `volume.delete()` is refused (409) while a sandbox uses the volume and accepted after.
Sandbox A also runs the POSIX suite (`crates/volume-jobs/tests/posix.py`, the one the SeaweedFS test runs)
on the embedded S3, and the third sandbox reads its results back (SQLite database, 1 MiB random file).
"""

import hashlib
import json
import os
import pathlib
import time
import uuid

import pytest
from daytona import CreateSandboxFromSnapshotParams, DaytonaError, VolumeMount

RUN = uuid.uuid4().hex[:10]
MOUNT = "/home/daytona/vol"


def ready_volume(daytona, name, timeout=60):
    start = time.monotonic()
    vol = daytona.volume.get(name, create=True)
    while vol.state != "ready":
        assert vol.state in ("pending_create", "creating"), vol
        assert time.monotonic() - start < timeout, f"volume stuck in {vol.state}"
        time.sleep(0.5)
        vol = daytona.volume.get(name)
    return vol, time.monotonic() - start


def sandbox_with(daytona, vol):
    return daytona.create(CreateSandboxFromSnapshotParams(
        volumes=[VolumeMount(volume_id=vol.id, mount_path=MOUNT)]), timeout=120)


def wait_for(sb, path, sha, timeout=30):
    """Reads `path` until its sha256 is `sha` (uploads after close are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = sb.fs.download_file(path)
            if hashlib.sha256(data).hexdigest() == sha:
                return data
        except DaytonaError:
            pass
        assert time.monotonic() < deadline, f"{path} never showed the expected bytes"
        time.sleep(0.5)


POSIX_SUITE = (pathlib.Path(__file__).resolve().parents[2] / "crates/volume-jobs/tests/posix.py").read_bytes()


def posix_suite(sb, phase, sha=None, timeout=30):
    """Runs the POSIX suite in `MOUNT/posix` (`write`, or `read` checking `sha`); answers its JSON.
    A read is retried until it passes or `timeout` (uploads after close are asynchronous)."""
    sb.fs.upload_file(POSIX_SUITE, "/tmp/posix.py")
    deadline = time.monotonic() + timeout
    while True:
        r = sb.process.exec(f"python3 /tmp/posix.py {MOUNT}/posix {phase} {sha or ''}", timeout=120)
        lines = [l for l in r.result.splitlines() if l.startswith("{")]
        out = json.loads(lines[-1]) if lines else {}
        if r.exit_code == 0 and out.get("ok") is True:
            return out
        assert phase == "read" and time.monotonic() < deadline, f"POSIX suite {phase} failed: {r.exit_code} {r.result}"
        time.sleep(1)


def test_a_volume_is_shared_by_sandboxes_and_outlives_them(daytona):
    name = f"sdk-vol-{RUN}"
    vol, took = ready_volume(daytona, name)
    print(f"volume {name}: POST -> ready in {took:.2f}s")
    assert vol.name == name and vol.organization_id
    assert any(v.id == vol.id for v in daytona.volume.list())

    blob = os.urandom(1024 * 1024)
    sha = hashlib.sha256(blob).hexdigest()
    a = sandbox_with(daytona, vol)
    b = None
    try:
        a.fs.upload_file(blob, f"{MOUNT}/random.bin")
        a.fs.upload_file(b"hello from A", f"{MOUNT}/notes/a.txt")
        r = a.process.exec(f"echo appended >> {MOUNT}/notes/a.txt && id -un && stat -c %a {MOUNT}")
        assert r.exit_code == 0, r.result
        assert "daytona" in r.result, r.result
        suite = posix_suite(a, "write")

        b = sandbox_with(daytona, vol)
        assert wait_for(b, f"{MOUNT}/random.bin", sha) == blob
        notes = b.fs.download_file(f"{MOUNT}/notes/a.txt")
        assert notes.startswith(b"hello from A") and b"appended" in notes, notes
        # B writes too; the volume is one filesystem for both.
        r = b.process.exec(f"echo from-b > {MOUNT}/b.txt && cat {MOUNT}/b.txt")
        assert r.exit_code == 0 and r.result.strip() == "from-b", r.result

        with pytest.raises(DaytonaError) as err:
            daytona.volume.delete(vol)
        assert "in use" in str(err.value), err.value
    finally:
        for sb in (a, b):
            if sb is not None:
                sb.delete()

    c = sandbox_with(daytona, vol)
    try:
        assert wait_for(c, f"{MOUNT}/random.bin", sha) == blob
        assert c.fs.download_file(f"{MOUNT}/b.txt").strip() == b"from-b"
        posix_suite(c, "read", suite["sha"])
    finally:
        c.delete()

    daytona.volume.delete(vol)
    deadline = time.monotonic() + 60
    while daytona.volume.get(name).state != "deleted" if _exists(daytona, name) else False:
        assert time.monotonic() < deadline, "volume never deleted"
        time.sleep(0.5)
    assert all(v.id != vol.id for v in daytona.volume.list())


def _exists(daytona, name):
    try:
        daytona.volume.get(name)
        return True
    except DaytonaError:
        return False


def test_bad_mounts_are_refused(daytona):
    vol, _ = ready_volume(daytona, f"sdk-vol-bad-{RUN}")
    try:
        for path in ("relative/dir", "/", "/proc", "/home/daytona/.."):
            with pytest.raises(DaytonaError):
                daytona.create(CreateSandboxFromSnapshotParams(
                    volumes=[VolumeMount(volume_id=vol.id, mount_path=path)]), timeout=60)
        with pytest.raises(DaytonaError):
            daytona.create(CreateSandboxFromSnapshotParams(volumes=[
                VolumeMount(volume_id=vol.id, mount_path="/data"),
                VolumeMount(volume_id=vol.name, mount_path="/data")]), timeout=60)
        with pytest.raises(DaytonaError):
            daytona.create(CreateSandboxFromSnapshotParams(
                volumes=[VolumeMount(volume_id=f"missing-{RUN}", mount_path="/data")]), timeout=60)
    finally:
        daytona.volume.delete(vol)
