"""Snapshots through the official Daytona SDK, unmodified, against `cove up` (issue 12).

Declarative builds on the built-in base image, with build logs streamed through `on_logs`, a local file
shipped as a build context through `object-storage/push-access` (the SDK's own S3 upload), sandboxes
created from the result, list/get/delete, and a failing build that ends `build_failed` with Docker's error.
"""

import os
import pathlib
import tempfile
import time
import uuid

import pytest
from daytona import CreateSandboxFromSnapshotParams, CreateSnapshotParams, DaytonaError, Image

RUN = uuid.uuid4().hex[:10]
BASE = "cove-sandbox-base:latest"


def build(daytona, name, image):
    logs = []
    snap = daytona.snapshot.create(CreateSnapshotParams(name=name, image=image), on_logs=logs.append)
    return snap, logs


def test_declarative_build_streams_logs_and_a_sandbox_sees_the_change(daytona):
    marker = f"built-{RUN}"
    name = f"sdk-build-{RUN}"
    snap, logs = build(daytona, name, Image.base(BASE).run_commands(f"echo {marker} > /home/daytona/cove-marker"))
    try:
        assert snap.state == "active", snap
        assert snap.name == name
        text = "\n".join(logs)
        # The SDK's own lines and the build's (Docker's step output for the RUN instruction).
        assert f"Created snapshot {name}" in text, text
        assert "cove-marker" in text, f"no build output streamed: {text}"
        assert snap.size is None or snap.size > 0
        got = daytona.snapshot.get(name)
        assert got.id == snap.id and got.state == "active"
        assert snap.id in {s.id for s in daytona.snapshot.list().items}

        sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot=name))
        try:
            r = sb.process.exec("cat /home/daytona/cove-marker")
            assert r.exit_code == 0, r.result
            assert r.result.strip() == marker
        finally:
            sb.delete()
    finally:
        daytona.snapshot.delete(daytona.snapshot.get(name))


def test_a_local_file_travels_through_object_storage_into_the_image(daytona):
    payload = os.urandom(48 * 1024).hex()
    with tempfile.TemporaryDirectory(prefix="cove-ctx-") as d:
        local = pathlib.Path(d) / f"ctx-{RUN}.txt"
        local.write_text(payload)
        name = f"sdk-ctx-{RUN}"
        snap, _ = build(daytona, name, Image.base(BASE).add_local_file(str(local), "/opt/cove/ctx.txt"))
    try:
        assert snap.state == "active", snap
        assert snap.build_info is not None and len(snap.build_info.context_hashes or []) == 1
        sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot=snap.id))
        try:
            assert sb.fs.download_file("/opt/cove/ctx.txt").decode() == payload
        finally:
            sb.delete()
    finally:
        daytona.snapshot.delete(snap)


def test_a_failing_build_ends_build_failed_with_the_reason(daytona):
    name = f"sdk-fail-{RUN}"
    with pytest.raises(DaytonaError) as err:
        build(daytona, name, Image.base(BASE).run_commands("exit 3"))
    assert "Failed to create snapshot" in str(err.value)
    assert "3" in str(err.value), str(err.value)
    snap = daytona.snapshot.get(name)
    assert snap.state == "build_failed"
    assert snap.error_reason and "3" in snap.error_reason
    # A sandbox cannot be made from it.
    with pytest.raises(DaytonaError):
        daytona.create(CreateSandboxFromSnapshotParams(snapshot=name))
    daytona.snapshot.delete(snap)


def test_delete_removes_the_snapshot(daytona):
    name = f"sdk-del-{RUN}"
    snap, _ = build(daytona, name, Image.base(BASE).env({"COVE_RUN": RUN}))
    assert snap.state == "active"
    daytona.snapshot.delete(snap)
    gone = False
    for _ in range(60):
        try:
            s = daytona.snapshot.get(name)
            assert s.state == "removing", s.state
        except DaytonaError as e:
            assert "not found" in str(e).lower() or getattr(e, "status_code", 404) == 404
            gone = True
            break
        time.sleep(1)
    assert gone, "the snapshot was not removed within 60 s"
