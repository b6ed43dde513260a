"""Preview URLs through `cove-proxy` (the proxy `cove up` runs), with the official SDK.

A sandbox serves `python3 -m http.server 8080` and a stdlib websocket echo server on 8765; the
SDK's preview link and signed URL are opened through the proxy. The proxy's address is what
`cove up` printed (`COVE_PROXY_URL=`); preview hosts (`{port}-{id}.preview.localhost:{port}`)
are sent as the Host header to the proxy's loopback address, so the test needs no resolver for
`*.localhost`.
"""

import base64
import hashlib
import os
import socket
import time
import urllib.parse
from http import HTTPStatus

import pytest
import requests
from daytona import CreateSandboxFromSnapshotParams, SessionExecuteRequest

WS_SERVER = r'''
import base64, hashlib, socket, struct, threading
G = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(4096)
    key = [l.split(":", 1)[1].strip() for l in head.decode().split("\r\n") if l.lower().startswith("sec-websocket-key")][0]
    acc = base64.b64encode(hashlib.sha1((key + G).encode()).digest()).decode()
    c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: " + acc + "\r\n\r\n").encode())
    f = c.makefile("rb")
    while True:
        b1, b2 = f.read(2)
        n = b2 & 127
        if n == 126: n = struct.unpack(">H", f.read(2))[0]
        elif n == 127: n = struct.unpack(">Q", f.read(8))[0]
        mask = f.read(4)
        data = bytes(x ^ mask[i % 4] for i, x in enumerate(f.read(n)))
        if b1 & 15 == 8:
            return
        hdr = bytes([0x81, len(data)]) if len(data) < 126 else bytes([0x81, 126]) + struct.pack(">H", len(data))
        c.sendall(hdr + data)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8765)); s.listen(16)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


def proxy_of(cove):
    line = next((l for l in cove.lines if l.startswith("COVE_PROXY_URL=")), None)
    assert line, f"cove up printed no proxy address: {cove.lines}"
    return urllib.parse.urlsplit(line.split("=", 1)[1])


def fetch(cove, url, headers=None, stream=False, timeout=30):
    """GET `url` (a preview URL) through the proxy's loopback address with its host as `Host`."""
    u = urllib.parse.urlsplit(url)
    p = proxy_of(cove)
    target = f"http://{p.hostname}:{p.port}{u.path or '/'}" + (f"?{u.query}" if u.query else "")
    h = {"Host": u.netloc, **(headers or {})}
    return requests.get(target, headers=h, stream=stream, timeout=timeout, allow_redirects=False)


def serve_files(sandbox, session):
    sandbox.fs.create_folder("/tmp/www", "755")
    sandbox.fs.upload_file(b"hello from the sandbox\n", "/tmp/www/index.txt")
    sandbox.fs.upload_file(WS_SERVER.encode(), "/tmp/ws_echo.py")
    # One session per server: a session runs its commands one after the other, so a second
    # server in the same session would wait for the first to exit.
    for name, cmd in [(session, "cd /tmp/www && python3 -m http.server 8080"), (session + "-ws", "python3 /tmp/ws_echo.py")]:
        sandbox.process.create_session(name)
        sandbox.process.execute_session_command(name, SessionExecuteRequest(command=cmd, run_async=True))


def wait_serving(cove, sandbox, token):
    link = sandbox.get_preview_link(8080)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = fetch(cove, link.url + "/index.txt", {"X-Daytona-Preview-Token": token})
        if r.status_code == 200:
            return
        time.sleep(0.3)
    raise AssertionError(f"the preview never answered: {r.status_code} {r.text[:300]}")


@pytest.fixture(scope="module")
def served(daytona, cove):
    sb = daytona.create()
    serve_files(sb, "preview")
    wait_serving(cove, sb, sb.get_preview_link(8080).token)
    yield sb
    sb.delete()


def test_link_and_token_open_the_page(served, cove):
    link = served.get_preview_link(8080)
    assert link.url.startswith("http://8080-" + served.id + ".preview.localhost:")
    r = fetch(cove, link.url + "/index.txt", {"X-Daytona-Preview-Token": link.token})
    assert r.status_code == 200 and r.text == "hello from the sandbox\n"
    # No credentials: 401, a JSON envelope for API clients, a page for browsers.
    r = fetch(cove, link.url + "/index.txt")
    assert r.status_code == 401 and r.json()["statusCode"] == 401, r.text
    r = fetch(cove, link.url + "/", {"Accept": "text/html"})
    assert r.status_code == 401 and "private" in r.text and r.headers["content-type"].startswith("text/html")
    r = fetch(cove, link.url + "/index.txt", {"X-Daytona-Preview-Token": "wrong"})
    assert r.status_code == 401
    # The token in the query works too, and becomes a cookie for the page's own requests.
    r = fetch(cove, link.url + "/index.txt?DAYTONA_SANDBOX_AUTH_KEY=" + link.token)
    assert r.status_code == 200 and r.text == "hello from the sandbox\n"
    assert f"daytona-sandbox-auth-{served.id}=" in r.headers.get("set-cookie", "")
    cookie = {"Cookie": f"daytona-sandbox-auth-{served.id}={link.token}"}
    assert fetch(cove, link.url + "/index.txt", cookie).status_code == 200
    # The API key works as a bearer token.
    assert fetch(cove, link.url + "/index.txt", {"Authorization": f"Bearer {cove.api_key}"}).status_code == 200


def until(pred, limit):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if pred():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"not within {limit} s")


def test_public_then_private_within_ten_seconds(served, cove):
    url = served.get_preview_link(8080).url + "/index.txt"
    served.set_public(True)
    until(lambda: fetch(cove, url).status_code == 200, 10)
    # Protected ports need credentials even on a public sandbox.
    toolbox = served.get_preview_link(2280).url
    assert fetch(cove, toolbox + "/version").status_code == 401
    served.set_public(False)
    took = until(lambda: fetch(cove, url).status_code == 401, 10)
    print(f"private again after {took:.1f} s")


def test_signed_url_until_it_expires(served, cove):
    signed = served.create_signed_preview_url(8080, expires_in_seconds=3)
    assert signed.url.startswith(f"http://8080-{signed.token}.preview.localhost:")
    r = fetch(cove, signed.url + "/index.txt")
    assert r.status_code == 200 and r.text == "hello from the sandbox\n"
    assert fetch(cove, signed.url.replace("8080-", "8081-", 1) + "/").status_code == 401, "another port"
    # Expired (plus at most the proxy's 5 s cache): refused.
    until(lambda: fetch(cove, signed.url + "/index.txt").status_code == 401, 3 + 5 + 2)
    other = served.create_signed_preview_url(8080, expires_in_seconds=600)
    assert fetch(cove, other.url + "/index.txt").status_code == 200
    served.expire_signed_preview_url(8080, other.token)
    until(lambda: fetch(cove, other.url + "/index.txt").status_code == 401, 8)


def test_websocket_echo(served, cove):
    import websocket

    link = served.get_preview_link(8765)
    p = proxy_of(cove)
    host = urllib.parse.urlsplit(link.url).netloc
    # Without credentials the upgrade is refused like any request.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://{p.hostname}:{p.port}/", host=host, timeout=20)
    assert refused.value.status_code == 401
    deadline = time.monotonic() + 15
    while True:  # the echo server may still be starting (502 until it listens)
        try:
            ws = websocket.create_connection(f"ws://{p.hostname}:{p.port}/", host=host,
                                             header=[f"X-Daytona-Preview-Token: {link.token}"], timeout=20)
            break
        except websocket.WebSocketBadStatusException as e:
            if e.status_code != 502 or time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    for msg in ["hello", "x" * 5000, "é" * 3000]:
        ws.send(msg)
        assert ws.recv() == msg
    ws.close()


def test_session_log_follow_through_the_proxy(served, cove):
    """The SDK's `get_session_command_logs_async` (httpx_ws + its stdout/stderr demux), sent to
    the proxy's `/toolbox/{id}/...` (the sandbox's toolboxProxyUrl by default): the lines arrive while the command runs, and the stream ends with it."""
    import asyncio

    import httpx
    import httpx_ws
    from daytona._utils.stream import std_demux_stream_httpx_ws

    sid = "follow"
    served.process.create_session(sid)
    cmd = served.process.execute_session_command(sid, SessionExecuteRequest(
        command="for i in 1 2 3; do echo line-$i; sleep 0.3; done; echo oops >&2", run_async=True))
    p = proxy_of(cove)
    url = f"ws://{p.hostname}:{p.port}/toolbox/{served.id}/process/session/{sid}/command/{cmd.cmd_id}/logs?follow=true"
    out, err = [], []
    start = time.monotonic()
    with httpx.Client(headers={"Authorization": f"Bearer {cove.api_key}"}, timeout=30) as client:
        with httpx_ws.connect_ws(url, client) as ws:
            asyncio.run(std_demux_stream_httpx_ws(ws, out.append, err.append))
    took = time.monotonic() - start
    assert "".join(out).split() == ["line-1", "line-2", "line-3"], out
    assert "".join(err).strip() == "oops", err
    assert took < 20, f"the follow stream did not end with the command ({took:.1f} s)"
    # Without credentials the proxy refuses the upgrade.
    with httpx.Client(timeout=30) as client:
        with pytest.raises(httpx_ws.WebSocketUpgradeError) as refused:
            with httpx_ws.connect_ws(url, client):
                pass
    assert refused.value.response.status_code == 401


# A stopped sandbox: the runner's 409 SANDBOX_NOT_STARTED, in the proxy's envelope.
STOPPED_STATUS = 409


def envelope(r, status, path="/"):
    """`r` is the proxy's JSON error envelope (CONTRACT §2) with `status`: its fields."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    e = r.json()
    assert e["statusCode"] == status and e["source"] == "DAYTONA_PROXY", e
    assert e["error"] == HTTPStatus(status).phrase, e
    assert e["message"] and e["code"] and e["timestamp"] and e["path"] == path and e["method"] == "GET", e
    return e


def test_bad_input(served, cove):
    link = served.get_preview_link(8080)
    tok = {"X-Daytona-Preview-Token": link.token}
    base = urllib.parse.urlsplit(link.url).netloc.split("-", 1)[1]
    domain = base.split(".", 1)[1]
    # Every answer here comes at once (short client timeouts: a hang fails the test).
    get = lambda url, headers: fetch(cove, url, headers, timeout=10)
    # Ports outside 1..=65535 or not a number: 400 with the reason, before any credential check.
    for port in ["0", "65536", "http", "-1", "8080x"]:
        for headers in (tok, {}):
            e = envelope(get(f"http://{port}-{base}/", headers), 400)
            assert "port" in e["message"].lower() and e["code"] == "BAD_REQUEST", (port, e)
    # Malformed preview hosts: no port label, no id, a nested label.
    for host in [f"8080.{domain}", f"8080-.{domain}", f"a.8080-{base}", f"-{base}"]:
        envelope(get(f"http://{host}/", tok), 400)
    # A browser gets a page, not JSON.
    r = get(f"http://0-{base}/", {"Accept": "text/html,*/*"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html") and "port" in r.text.lower()
    # An unknown sandbox: refused like a private one (existence never leaks), with any credential.
    for headers in (tok, {"Authorization": f"Bearer {cove.api_key}"}, {}):
        envelope(get(f"http://8080-not-a-sandbox.{domain}/", headers), 401)
    # Another host on the proxy's address: its own routes, a clear 404.
    e = envelope(get("http://example.invalid/anything", {}), 404, "/anything")
    assert "previews are served on" in e["message"], e
    # Nothing listens on 8099: 502 with a clear message, in the proxy's envelope.
    e = envelope(get(served.get_preview_link(8099).url + "/", tok), 502)
    assert "port 8099" in e["message"] and e["code"] == "BAD_GATEWAY", e
    r = get(served.get_preview_link(8099).url + "/", {**tok, "Accept": "text/html"})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html") and "8099" in r.text
    # An error answered by the server in the sandbox is its own, passed on as is.
    r = get(link.url + "/no-such-file", tok)
    assert r.status_code == 404 and "DAYTONA_PROXY" not in r.text, r.text


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_large_download_streams(served, cove):
    served.process.exec("head -c 104857600 /dev/urandom > /tmp/www/big.bin")
    link = served.get_preview_link(8080)
    before = rss_kib(cove.proc.pid)
    peak, total, digest = before, 0, hashlib.sha256()
    with fetch(cove, link.url + "/big.bin", {"X-Daytona-Preview-Token": link.token}, stream=True, timeout=120) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(1 << 20):
            total += len(chunk)
            digest.update(chunk)
            peak = max(peak, rss_kib(cove.proc.pid))
    assert total == 100 << 20
    want = served.process.exec("sha256sum /tmp/www/big.bin").result.split()[0]
    assert digest.hexdigest() == want
    grew = (peak - before) / 1024
    print(f"cove (with the proxy) grew by {grew:.1f} MiB while streaming 100 MiB")
    assert grew < 48, f"the proxy buffered: +{grew:.1f} MiB"


def toolbox_errors_match(cove, sid):
    """`/toolbox/{sid}/...` on the proxy and on the `toolbox` component: the same status and message."""
    auth = {"Authorization": f"Bearer {cove.api_key}"}
    p = proxy_of(cove)
    base = cove.api_url.rsplit("/api", 1)[0]
    component = requests.get(f"{base}/toolbox/{sid}/files?path=/", headers=auth, timeout=10)
    proxied = requests.get(f"http://{p.hostname}:{p.port}/toolbox/{sid}/files?path=/", headers=auth, timeout=10)
    assert 400 <= proxied.status_code < 500, (sid, proxied.status_code, proxied.text)
    assert proxied.status_code == component.status_code, (sid, component.text, proxied.text)
    want, got = component.json(), proxied.json()
    assert got["statusCode"] == proxied.status_code and got["message"] == want["message"], (sid, want, got)


def test_network_blocked_sandbox_still_serves(daytona, cove):
    sb = daytona.create(CreateSandboxFromSnapshotParams(network_block_all=True))
    try:
        assert sb.network_block_all
        serve_files(sb, "blocked")
        wait_serving(cove, sb, sb.get_preview_link(8080).token)
        link = sb.get_preview_link(8080)
        r = fetch(cove, link.url + "/index.txt", {"X-Daytona-Preview-Token": link.token})
        assert r.status_code == 200 and r.text == "hello from the sandbox\n"
        sb.stop()
        r = fetch(cove, link.url + "/index.txt", {"X-Daytona-Preview-Token": link.token}, timeout=10)
        e = envelope(r, STOPPED_STATUS, "/index.txt")
        assert "not" in e["message"] and sb.id in e["message"], e
        # The toolbox through the proxy answers a stopped or missing sandbox as the `toolbox`
        # component does.
        for sid in (sb.id, "not-a-sandbox"):
            toolbox_errors_match(cove, sid)
    finally:
        sb.delete()
