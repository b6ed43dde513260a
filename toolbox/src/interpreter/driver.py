# Cove's code-interpreter driver: one long-lived `python3 -c <this> <results-fifo>` per context,
# started by cove-toolbox (toolbox/src/interpreter/worker.rs).
#
# Channels (set up by the daemon):
#   fd 0      requests, one JSON object a line: {"code": str, "envs": {str: str}}; the driver moves
#             it away at start and gives fd 0 /dev/null, so user code reading stdin sees EOF.
#   fd 1, 2   the user code's stdout and stderr, pipes the daemon streams from as they fill
#             (Python's sys.stdout/sys.stderr are line-buffered; subprocesses write there too).
#   argv[1]   a FIFO for results, one JSON object a line: first {"ready": true, "pid", "version"},
#             then one {"status": "ok"|"error"|"interrupted", "name", "value", "traceback"} per
#             request, written after the cell's output was flushed to fd 1 and 2.
#
# Cells run with exec() in one persistent namespace (the `__main__` module), so variables,
# imports and functions carry over. SIGINT is ignored between cells and raises
# KeyboardInterrupt inside one: the daemon's timeout interrupts a cell without ever hitting the
# driver's own protocol code. The driver exits at EOF on its requests (the daemon went away).

import builtins
import collections
import io
import json
import linecache
import os
import platform
import signal
import sys
import traceback
import types

_DRIVER_FILE = sys._getframe().f_code.co_filename
# Bounds: the text of an error, and the sources kept for tracebacks of earlier cells.
_MAX_FIELD = 256 * 1024
_MAX_KEPT_CELLS = 500
_MAX_KEPT_CELL_BYTES = 1 << 20


def _clip(text):
    if len(text) <= _MAX_FIELD:
        return text
    half = _MAX_FIELD // 2
    return text[:half] + "\n... [%d characters cut] ...\n" % (len(text) - 2 * half) + text[-half:]


def _line_writer(fd):
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 64 * 1024),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


class _Results:
    def __init__(self, path):
        self._fd = os.open(path, os.O_WRONLY)  # non-inheritable: subprocesses never hold it
        try:
            os.unlink(path)
        except OSError:
            pass

    def send(self, obj):
        data = memoryview((json.dumps(obj) + "\n").encode("utf-8", "backslashreplace"))
        while data:
            data = data[os.write(self._fd, data):]


def _describe(exc, status):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _DRIVER_FILE:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:  # a broken __str__ or a huge chain: the name still tells
        text = ""
    try:
        value = str(exc)
    except Exception:
        value = "<unprintable %s>" % type(exc).__name__
    return {
        "status": status,
        "name": type(exc).__name__,
        "value": _clip(value),
        "traceback": _clip(text),
    }


class _Driver:
    def __init__(self, results_path):
        # Requests move off fd 0; user code gets /dev/null as stdin.
        self.requests = os.fdopen(os.dup(0), "rb")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self.results = _Results(results_path)
        # Fresh line-buffered writers: one write(2) a line (the stock ones of a pipe write
        # `print`'s text and its newline apart, or hold lines back).
        sys.stdout.flush()
        sys.stderr.flush()
        self.stdout, self.stderr = _line_writer(1), _line_writer(2)
        sys.stdout = sys.__stdout__ = self.stdout
        sys.stderr = sys.__stderr__ = self.stderr
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        self.namespace = main.__dict__
        sys.argv = [""]
        self.cells = 0
        self.kept = collections.deque()
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _remember(self, filename, code):
        # Tracebacks show the lines of every cell a frame comes from (functions of old cells too).
        if len(code) > _MAX_KEPT_CELL_BYTES:
            return
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.kept.append(filename)
        if len(self.kept) > _MAX_KEPT_CELLS:
            linecache.cache.pop(self.kept.popleft(), None)

    def _restore_streams(self):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        sys.stdout, sys.stderr = self.stdout, self.stderr
        for stream in (self.stdout, self.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    def run_cell(self, code, envs):
        self.cells += 1
        filename = "<cell %d>" % self.cells
        self._remember(filename, code)
        saved = {}
        for key, value in envs.items():
            key = str(key)
            saved[key] = os.environ.get(key)
            os.environ[key] = str(value)
        outcome = {"status": "ok"}
        try:
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                compiled = compile(code, filename, "exec", dont_inherit=True)
                exec(compiled, self.namespace)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        except SystemExit:
            pass  # exit() ends the cell, not the context
        except KeyboardInterrupt as exc:
            outcome = _describe(exc, "interrupted")
        except BaseException as exc:
            outcome = _describe(exc, "error")
        finally:
            self._restore_streams()
            for key, previous in saved.items():
                if previous is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = previous
        return outcome

    def serve(self):
        self.results.send({"ready": True, "pid": os.getpid(), "version": platform.python_version()})
        while True:
            line = self.requests.readline()
            if not line:
                return
            try:
                request = json.loads(line)
                code = request.get("code", "")
                envs = request.get("envs") or {}
                if not isinstance(code, str) or not isinstance(envs, dict):
                    raise ValueError("code must be a string and envs an object")
            except ValueError as exc:
                self.results.send(_describe(exc, "error"))
                continue
            self.results.send(self.run_cell(code, envs))


if __name__ == "__main__":
    _Driver(sys.argv[1]).serve()
