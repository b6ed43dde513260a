"""`cove up`'s own runner agent goes with it: even when cove is killed with SIGKILL (no chance to
stop its child), the agent shuts down by itself and removes its unclaimed warm containers."""
import os
import signal
import subprocess
import tempfile
import time

from conftest import Cove


def _children(pid):
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [(int(line.split(None, 1)[0]), line.split(None, 1)[1]) for line in out.splitlines() if line.strip()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _running_pool(runner_id):
    return subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=cove.runner={runner_id}", "--filter", "label=cove.pool=true"],
        capture_output=True, text=True, check=True,
    ).stdout.split()


def test_runner_agent_exits_with_a_killed_cove():
    with tempfile.TemporaryDirectory(prefix="cove-up-runner-") as d:
        c = Cove(d).start()
        try:
            runners = [pid for pid, args in _children(c.proc.pid) if "cove-runner" in args]
            assert len(runners) == 1, _children(c.proc.pid)
            (runner_pid,) = runners
            (runner_id,) = c.runner_ids
            deadline = time.monotonic() + 60
            while not _running_pool(runner_id) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _running_pool(runner_id), "the warm pool never filled"

            c.proc.send_signal(signal.SIGKILL)
            c.proc.wait()
            deadline = time.monotonic() + 30
            while _alive(runner_pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _alive(runner_pid), "the runner agent outlived cove"
            assert _running_pool(runner_id) == [], "warm containers were left running"
        finally:
            c.stop()
