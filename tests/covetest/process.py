"""`cove up` as a process on 127.0.0.1:<port chosen at run time>, and stopping processes by PID."""

import queue
import subprocess
import threading
import time

from covetest.bins import ROOT, binary


class ReadyLines:
    """What `cove up` prints on stdout up to `cove ready`."""

    def __init__(self):
        self.lines = []
        self.api_url = None
        self.api_key = None

    def add(self, line):
        """Records one line; True once it is `cove ready`."""
        self.lines.append(line)
        if line.startswith("DAYTONA_API_URL="):
            self.api_url = line.split("=", 1)[1]
        elif line.startswith("DAYTONA_API_KEY="):
            self.api_key = line.split("=", 1)[1]
        return line.strip() == "cove ready"


class CoveProcess:
    """One `cove up --listen 127.0.0.1:0`, its stderr appended to `stderr_path`."""

    def __init__(self, stderr_path):
        self.stderr_path = stderr_path
        self.proc = None
        self.api_url = None
        self.api_key = None
        self.lines = []

    @property
    def base(self):
        return self.api_url[: -len("/api")]

    def launch(self, manifest, args, env, timeout):
        """Starts `cove up --manifest <manifest> --listen 127.0.0.1:0 <args>` with `env` and waits
        for `cove ready`; sets `api_url`, `api_key` (None when not printed) and `lines`."""
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [binary("cove"), "up", "--manifest", str(manifest), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
        )
        ready = ReadyLines()
        self.lines = ready.lines
        lines = _pump(self.proc.stdout)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise AssertionError(f"cove did not get ready: {self.lines} {self.tail()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"cove exited early: {self.lines} {self.tail()}")
            if ready.add(line):
                break
        self.api_url, self.api_key = ready.api_url, ready.api_key
        assert self.api_url and self.api_url.startswith("http://127.0.0.1:") and self.api_url.endswith("/api")
        return self

    def tail(self):
        """The last 4000 characters of its stderr."""
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self, timeout=20):
        stop_process(self.proc, timeout)
        self.proc = None


def _pump(stream):
    """A queue of the stream's lines, None at the end; read on a thread so the pipe never fills."""
    lines = queue.Queue()

    def pump():
        for raw in stream:
            lines.put(raw.decode(errors="replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def stop_process(proc, timeout=20):
    """SIGTERM to `proc`'s PID, then SIGKILL after `timeout` seconds; a no-op once it exited."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remove_containers(label):
    """`docker rm -f` every container labelled `cove.runner=<label>` (agents leave them on purpose)."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=cove.runner={label}"],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
