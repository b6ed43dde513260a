"""Signed file URLs (CONTRACT §10.7) with the official SDK against `cove up`: `download_url`,
`upload_url` and `rotate_signing_key`. The URLs point at `toolboxProxyUrl` (cove-proxy's
`/toolbox`) and must work with no credentials at all until they expire, for one path and one
method only, and stop working at once when the key is rotated.
"""

import time
import urllib.parse

import pytest
import requests


@pytest.fixture(scope="module")
def sandbox(daytona):
    sb = daytona.create()
    sb.fs.upload_file(b"signed content\n", "/home/daytona/signed.txt")
    yield sb
    sb.delete()


def with_param(url, **changes):
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    q.update(changes)
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


def assert_refused(r):
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.json()["message"], r.text


def test_download_and_upload_urls_work_without_credentials(sandbox):
    url = sandbox.download_url("/home/daytona/signed.txt")
    assert "signature=v1_" in url and "expires=" in url, url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.content == b"signed content\n", (r.status_code, r.text)

    up = sandbox.upload_url("/home/daytona/uploaded via url.bin")
    payload = bytes(range(256)) * 64
    r = requests.post(up, files={"file": ("x.bin", payload)}, timeout=30)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    assert sandbox.fs.download_file("/home/daytona/uploaded via url.bin") == payload
    # A URL that never expires (ttl 0) works too.
    forever = sandbox.download_url("/home/daytona/signed.txt", ttl_seconds=0)
    assert "expires=0" in forever
    assert requests.get(forever, timeout=30).content == b"signed content\n"


def test_wrong_method_path_forgery_and_expiry_are_refused(sandbox):
    url = sandbox.download_url("/home/daytona/signed.txt")
    # Another path under the same signature, another method, a forged or missing signature.
    assert_refused(requests.get(with_param(url, path="/etc/shadow"), timeout=30))
    assert_refused(requests.post(url.replace("/files/download", "/files/upload-v2"),
                                 files={"file": ("x", b"evil")}, timeout=30))
    assert_refused(requests.get(with_param(url, signature="v1_" + "A" * 43), timeout=30))
    expires = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["expires"])
    assert_refused(requests.get(with_param(url, expires=str(expires + 3600)), timeout=30))
    # The signature is for the file operations only.
    other_op = url.replace("/files/download", "/files")
    assert_refused(requests.get(other_op, timeout=30))
    # Nothing was written by the refused upload.
    assert sandbox.fs.download_file("/home/daytona/signed.txt") == b"signed content\n"

    short = sandbox.download_url("/home/daytona/signed.txt", ttl_seconds=1)
    time.sleep(2.2)
    assert_refused(requests.get(short, timeout=30))


def test_rotation_invalidates_every_url_signed_before(sandbox):
    old_get = sandbox.download_url("/home/daytona/signed.txt")
    old_put = sandbox.upload_url("/home/daytona/after-rotation.txt")
    assert requests.get(old_get, timeout=30).status_code == 200
    sandbox.rotate_signing_key()
    assert_refused(requests.get(old_get, timeout=30))
    assert_refused(requests.post(old_put, files={"file": ("x", b"late")}, timeout=30))
    fresh = sandbox.download_url("/home/daytona/signed.txt")
    assert fresh != old_get
    assert requests.get(fresh, timeout=30).content == b"signed content\n"


def test_another_organization_gets_no_key(sandbox, cove, other_org_key):
    other = {"Authorization": f"Bearer {other_org_key}"}
    for method, path in (("GET", "signing-key"), ("POST", "signing-key/rotate")):
        r = requests.request(method, f"{cove.api_url}/sandbox/{sandbox.id}/{path}", headers=other, timeout=30)
        assert r.status_code == 404, (path, r.text)
    # The owner's URLs still work (the other org rotated nothing).
    assert requests.get(sandbox.download_url("/home/daytona/signed.txt"), timeout=30).status_code == 200
