"""API keys through `cove` with the official generated Daytona client (daytona-api-client 0.226.1)."""

import datetime
import json
import time
import uuid

import pytest
import requests
from daytona_api_client import ApiClient, ApiKeysApi, Configuration, CreateApiKey
from daytona_api_client.exceptions import ApiException

from conftest import Cove, mint_jwt


def client(cove, token, org=None):
    api = ApiClient(Configuration(host=cove.api_url, access_token=token))
    if org:
        api.set_default_header("X-Daytona-Organization-ID", org)
    return ApiKeysApi(api)


def status_of(call):
    with pytest.raises(ApiException) as e:
        call()
    return e.value.status


def test_generated_client_manages_keys(cove):
    admin = client(cove, cove.api_key)
    me = admin.get_current_api_key()
    assert me.name == "cove-admin"
    assert me.value.startswith("dtn") and "*" * 20 in me.value and me.value != cove.api_key
    assert me.user_id == "cove-admin" and me.organization_id
    assert me.additional_properties == {}, "no keys outside the contract"

    user = f"user-{uuid.uuid4().hex[:8]}"
    api = client(cove, mint_jwt(user))
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    created = api.create_api_key(CreateApiKey(name="deploy", permissions=["write:sandboxes", "delete:sandboxes"],
                                              expires_at=expires))
    assert created.name == "deploy"
    assert created.value.startswith("dtn_") and len(created.value) == 68
    int(created.value[4:], 16)
    assert sorted(created.permissions) == ["delete:sandboxes", "write:sandboxes"]
    assert abs((created.expires_at - expires).total_seconds()) < 1
    assert created.created_at.tzinfo is not None

    keys = api.list_api_keys()
    assert [k.name for k in keys] == ["deploy"]
    listed = keys[0]
    assert listed.value == "dtn" + "*" * 20 + created.value[-3:]
    assert listed.user_id == user and listed.last_used_at is None
    assert listed.additional_properties == {}

    # The new key authenticates /current (the only key route that takes an API key) and records its use.
    cur = client(cove, created.value).get_current_api_key()
    assert (cur.name, cur.user_id, cur.organization_id) == ("deploy", user, listed.organization_id)
    got = api.get_api_key("deploy")
    assert got.last_used_at is not None and got.last_used_at >= got.created_at - datetime.timedelta(seconds=1)

    api.delete_api_key("deploy")
    assert api.list_api_keys() == []
    assert status_of(lambda: api.get_api_key("deploy")) == 404
    assert status_of(lambda: client(cove, created.value).get_current_api_key()) == 401


def test_restart_on_the_same_data_dir_loses_nothing(fresh_data_dir):
    first = Cove(fresh_data_dir).start()
    try:
        assert first.api_key, "first start prints the admin key"
        token = mint_jwt("restart-user")
        made = client(first, token).create_api_key(CreateApiKey(name="keep", permissions=["write:sandboxes"]))
    finally:
        first.stop()
    second = Cove(fresh_data_dir).start()
    try:
        assert second.api_key is None, f"no new admin key on restart: {second.lines}"
        assert client(second, first.api_key).get_current_api_key().name == "cove-admin"
        assert client(second, made.value).get_current_api_key().name == "keep"
        assert [k.name for k in client(second, token).list_api_keys()] == ["keep"]
    finally:
        second.stop()


def raw(cove, method, path, token=None, body=None, org=None, content_type="application/json"):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if org:
        headers["X-Daytona-Organization-ID"] = org
    if body is not None:
        headers["Content-Type"] = content_type
    r = requests.request(method, cove.api_url + path, headers=headers, data=body, timeout=30)
    if r.status_code >= 400:
        env = r.json()
        assert r.headers["content-type"].startswith("application/json")
        assert env["statusCode"] == r.status_code and env["source"] == "DAYTONA_API", env
        assert env["path"] == "/api" + path.split("?")[0] and env["message"] and env["error"] and env["timestamp"]
    return r


def test_bad_input_gets_envelopes_and_never_500(cove):
    token = mint_jwt(f"bad-{uuid.uuid4().hex[:6]}")
    cases = [
        ("{broken", 400),
        (json.dumps({"name": 7, "permissions": []}), 400),
        (json.dumps({"name": "x", "permissions": [1]}), 400),
        (json.dumps({"name": "x", "permissions": ["root:all"]}), 400),
        (json.dumps({"name": "x", "permissions": [], "expiresAt": "soon"}), 400),
        (json.dumps({"name": "", "permissions": []}), 400),
        (json.dumps([]), 400),
    ]
    for body, want in cases:
        r = raw(cove, "POST", "/api-keys", token, body)
        assert r.status_code == want, (body, r.text)
    assert raw(cove, "POST", "/api-keys", token, "{}", content_type="text/plain").status_code == 400
    assert raw(cove, "GET", "/api-keys", token).json() == [], "failed creates stored nothing"

    assert raw(cove, "GET", "/api-keys/no-such-key", token).status_code == 404
    assert raw(cove, "DELETE", "/api-keys/no-such-key", token).status_code == 404
    assert raw(cove, "GET", "/api-keys").status_code == 401
    assert raw(cove, "GET", "/api-keys/current", "dtn_" + "0" * 64).status_code == 401
    assert raw(cove, "GET", "/api-keys/current", "not-a-token").status_code == 401
    r = raw(cove, "GET", "/api-keys/current", mint_jwt("x", ttl=-600))
    assert r.status_code == 401

    made = raw(cove, "POST", "/api-keys", token, json.dumps(
        {"name": "short", "permissions": [], "expiresAt": (datetime.datetime.now(datetime.timezone.utc)
                                                           + datetime.timedelta(seconds=2)).isoformat()}))
    assert made.status_code == 201
    assert raw(cove, "GET", "/api-keys/current", made.json()["value"]).status_code == 200
    time.sleep(2.5)
    r = raw(cove, "GET", "/api-keys/current", made.json()["value"])
    assert (r.status_code, r.json()["message"]) == (401, "This API key has expired")

    dup = json.dumps({"name": "twice", "permissions": []})
    assert raw(cove, "POST", "/api-keys", token, dup).status_code == 201
    assert raw(cove, "POST", "/api-keys", token, dup).status_code == 409
    # An API key may not manage keys without manage:api_keys.
    assert raw(cove, "GET", "/api-keys", made.json()["value"]).status_code in (401, 403)


def test_tenants_never_see_each_others_keys(cove):
    a_user, b_user = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    a, b = client(cove, mint_jwt(a_user)), client(cove, mint_jwt(b_user))
    a_key = a.create_api_key(CreateApiKey(name="same", permissions=[]))
    b_key = b.create_api_key(CreateApiKey(name="bkey", permissions=["manage:api_keys"]))
    a_org = client(cove, a_key.value).get_current_api_key().organization_id

    for api in (b, client(cove, b_key.value)):
        assert all(k.user_id == b_user for k in api.list_api_keys())
        assert status_of(lambda: api.get_api_key("same")) == 404
        assert status_of(lambda: api.delete_api_key("same")) == 404
        assert status_of(lambda: api.delete_api_key_for_user(a_user, "same")) == 404
    # B naming A's organization is refused, with a JWT or with B's key.
    assert status_of(lambda: client(cove, mint_jwt(b_user), org=a_org).list_api_keys()) == 403
    assert status_of(lambda: client(cove, b_key.value, org=a_org).get_current_api_key()) == 403
    # A's key is intact.
    assert client(cove, a_key.value).get_current_api_key().name == "same"
    assert [k.name for k in a.list_api_keys()] == ["same"]
