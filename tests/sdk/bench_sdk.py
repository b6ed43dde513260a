"""Latency of the SDK surface as a user's program sees it, through the official Python SDK
against `cove up` (HTTP → cove → cove-proxy → runner agent → toolbox daemon). Prints figures;
asserts only that every answer is right (a wrong answer makes the timing meaningless).

    COVE_BIN=target/release/cove tests/.cache/venv/bin/python tests/sdk/bench_sdk.py [--runs N]

* `create → first run_code`: `daytona.create()` of the default snapshot (served from the warm
  pool) until `code_interpreter.run_code("1+1")` has answered, the pool given time to refill
  between runs.
* `run_code("x+1")`: in a warm context (its interpreter running, `x` defined), the SDK's own
  call: a new websocket per execution, the request, the chunks up to the close.
* PTY keystroke echo: one byte written through the SDK's `PtyHandle` to a raw-mode `cat`,
  until it comes back.
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import conftest  # noqa: E402  (the suite's `cove up` fixture, used here as a plain class)


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def report(name, samples_s, goal=None):
    ms = [x * 1000 for x in samples_s]
    line = (f"{name}: n={len(ms)} p50={pct(ms, 50):.2f} ms p90={pct(ms, 90):.2f} ms "
            f"p99={pct(ms, 99):.2f} ms mean={statistics.fmean(ms):.2f} ms")
    if goal is not None:
        line += f" (goal p50 <= {goal} ms: {'met' if pct(ms, 50) <= goal else 'missed'})"
    print(line, flush=True)


def create_to_first_run_code(daytona, runs):
    samples, creates = [], []
    for _ in range(runs):
        time.sleep(3)  # the warm pool refills
        t0 = time.perf_counter()
        sb = daytona.create()
        t1 = time.perf_counter()
        r = sb.code_interpreter.run_code("1+1\nprint(6*7)")
        t2 = time.perf_counter()
        assert r.stdout.strip() == "42", r
        creates.append(t1 - t0)
        samples.append(t2 - t0)
        daytona.delete(sb)
    report("daytona.create() (warm pool)", creates)
    report("create -> first run_code answered (warm pool)", samples)


def run_code_warm(sb, n):
    ci = sb.code_interpreter
    ctx = ci.create_context()
    assert ci.run_code("x = 41", context=ctx).error is None
    for _ in range(20):  # warm-up: connections, the interpreter's first compile
        ci.run_code("x+1", context=ctx)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        r = ci.run_code(f"print(x+{i})", context=ctx)
        samples.append(time.perf_counter() - t0)
        assert r.stdout.strip() == str(41 + i), r
    ci.delete_context(ctx)
    report('run_code("x+1") in a warm context (new websocket per call, as the SDK does)', samples, goal=5)


def pty_echo(sb, n):
    from daytona import PtySize

    pty = sb.process.create_pty_session(id=f"bench-{time.time_ns()}", pty_size=PtySize(cols=80, rows=24))
    pty.wait_for_connection()
    stream = iter(pty)
    pty.send_input("stty raw -echo; echo READY; exec cat\n")
    seen = b""
    while seen.count(b"READY") < 2:  # the command line's echo, then the output
        seen += next(stream)
    time.sleep(0.3)
    samples = []
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    for i in range(n + 20):
        ch = alphabet[i % len(alphabet):][:1]
        t0 = time.perf_counter()
        pty.send_input(ch)
        got = b""
        while ch not in got:
            got += next(stream)
        if i >= 20:
            samples.append(time.perf_counter() - t0)
    pty.kill()
    report("PTY keystroke echo through the SDK's PtyHandle", samples, goal=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="creates measured")
    ap.add_argument("--n", type=int, default=200, help="run_code calls and keystrokes measured")
    args = ap.parse_args()
    from daytona import Daytona, DaytonaConfig

    with tempfile.TemporaryDirectory(prefix="cove-sdk-bench-") as d:
        cove = conftest.Cove(d).start()
        try:
            daytona = Daytona(DaytonaConfig(api_key=cove.api_key, api_url=cove.api_url))
            create_to_first_run_code(daytona, args.runs)
            sb = daytona.create()
            try:
                run_code_warm(sb, args.n)
                pty_echo(sb, args.n)
            finally:
                daytona.delete(sb)
        finally:
            cove.stop()


if __name__ == "__main__":
    main()
