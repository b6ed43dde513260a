"""Organizations, roles, members, invitations and users through `cove` with the official generated
Daytona client (daytona-api-client 0.226.1)."""

import uuid

import pytest
from daytona_api_client import (
    ApiClient,
    ConfigApi,
    Configuration,
    CreateLinkedAccount,
    CreateOrganization,
    CreateOrganizationInvitation,
    CreateOrganizationRole,
    HealthApi,
    OrganizationsApi,
    UpdateOrganizationMemberAccess,
    UpdateOrganizationRole,
    UsersApi,
)
from daytona_api_client.exceptions import ApiException

from conftest import mint_jwt


def api(cove, token=None):
    return ApiClient(Configuration(host=cove.api_url, access_token=token))


def status_of(call):
    with pytest.raises(ApiException) as e:
        call()
    return e.value.status


def test_public_config_and_health(cove):
    cfg = ConfigApi(api(cove)).config_controller_get_config()
    assert cfg.version and cfg.oidc is not None and cfg.maintanance_mode is False
    HealthApi(api(cove)).health_controller_live()
    ready = HealthApi(api(cove)).health_controller_check()
    assert ready.status == "ok" and ready.info["database"].status == "up"


def test_organizations_roles_invitations_members_and_users(cove):
    owner_id, guest_id = f"own-{uuid.uuid4().hex[:8]}", f"gst-{uuid.uuid4().hex[:8]}"
    owner = OrganizationsApi(api(cove, mint_jwt(owner_id)))
    guest = OrganizationsApi(api(cove, mint_jwt(guest_id)))

    me = UsersApi(api(cove, mint_jwt(owner_id))).get_authenticated_user()
    assert (me.id, me.email, me.public_keys) == (owner_id, f"{owner_id}@example.com", [])
    users = UsersApi(api(cove, mint_jwt(owner_id)))
    assert {(p.provider, p.linked) for p in users.get_account_providers()} >= {("github", False)}

    personal = owner.list_organizations()
    assert len(personal) == 1 and personal[0].personal is True
    org = owner.create_organization(CreateOrganization(name="E2E Team", default_region_id="us"))
    assert org.name == "E2E Team" and org.personal is False and org.created_by == owner_id
    assert (org.max_cpu_per_sandbox, org.max_memory_per_sandbox, org.max_disk_per_sandbox) == (4, 8, 10)
    assert org.suspended is False
    assert owner.get_organization(org.id).id == org.id
    assert {o.id for o in owner.list_organizations()} == {org.id, personal[0].id}

    usage = owner.get_organization_usage_overview(org.id)
    assert usage.total_snapshot_quota == 30 and usage.total_volume_quota == 100
    assert usage.region_usage[0].max_cpu_per_sandbox == 4

    role = owner.create_organization_role(org.id, CreateOrganizationRole(
        name="Deployer", description="ships things", permissions=["write:sandboxes", "delete:sandboxes"]))
    assert role.is_global is False and sorted(role.permissions) == ["delete:sandboxes", "write:sandboxes"]
    roles = owner.list_organization_roles(org.id)
    assert role.id in {r.id for r in roles} and any(r.is_global for r in roles)
    role = owner.update_organization_role(org.id, role.id, UpdateOrganizationRole(
        name="Deployer", description="ships", permissions=["write:sandboxes"]))
    assert role.permissions == ["write:sandboxes"]

    inv = owner.create_organization_invitation(org.id, CreateOrganizationInvitation(
        email=f"{guest_id}@example.com", role="member", assigned_role_ids=[role.id]))
    assert inv.status == "pending" and inv.organization_name == "E2E Team"
    assert [i.id for i in owner.list_organization_invitations(org.id)] == [inv.id]
    assert guest.get_organization_invitations_count_for_authenticated_user() == 1
    assert [i.id for i in guest.list_organization_invitations_for_authenticated_user()] == [inv.id]
    # Not a member yet: no access.
    assert status_of(lambda: guest.get_organization(org.id)) == 403

    accepted = guest.accept_organization_invitation(inv.id)
    assert accepted.status == "accepted" and accepted.assigned_roles[0].id == role.id
    assert status_of(lambda: guest.accept_organization_invitation(inv.id)) == 404

    members = {m.user_id: m for m in owner.list_organization_members(org.id)}
    assert set(members) == {owner_id, guest_id}
    assert members[owner_id].role == "owner"
    assert members[guest_id].role == "member" and members[guest_id].assigned_roles[0].name == "Deployer"
    assert guest.get_organization(org.id).id == org.id

    # A member cannot manage the organization or grant permissions.
    assert status_of(lambda: guest.create_organization_role(org.id, CreateOrganizationRole(
        name="Mine", description="", permissions=["write:volumes"]))) == 403
    assert status_of(lambda: guest.delete_organization(org.id)) == 403

    promoted = owner.update_access_for_organization_member(org.id, guest_id, UpdateOrganizationMemberAccess(
        role="owner", assigned_role_ids=[]))
    assert promoted.role == "owner" and promoted.assigned_roles == []
    owner.leave_organization(org.id)
    assert status_of(lambda: guest.leave_organization(org.id)) == 403  # the last owner stays
    assert status_of(lambda: owner.get_organization(org.id)) == 403

    # Invitations can be cancelled; decline works for the invitee.
    inv2 = guest.create_organization_invitation(org.id, CreateOrganizationInvitation(
        email=f"{owner_id}@example.com", role="member", assigned_role_ids=[]))
    guest.cancel_organization_invitation(org.id, inv2.id)
    assert status_of(lambda: owner.accept_organization_invitation(inv2.id)) == 404
    inv3 = guest.create_organization_invitation(org.id, CreateOrganizationInvitation(
        email=f"{owner_id}@example.com", role="member", assigned_role_ids=[]))
    owner.decline_organization_invitation(inv3.id)
    assert owner.get_organization_invitations_count_for_authenticated_user() == 0

    guest.delete_organization_role(org.id, role.id)
    guest.delete_organization(org.id)
    assert status_of(lambda: guest.get_organization(org.id)) == 403
    assert status_of(lambda: owner.delete_organization(personal[0].id)) == 403


def test_api_keys_cannot_use_organization_routes(cove):
    assert status_of(lambda: OrganizationsApi(api(cove, cove.api_key)).list_organizations()) == 403
    assert status_of(lambda: UsersApi(api(cove, cove.api_key)).get_authenticated_user()) == 403
    assert status_of(lambda: OrganizationsApi(api(cove)).list_organizations()) == 401


def test_system_admin_quota_suspension_and_users(cove):
    import requests

    admin = {"Authorization": f"Bearer {mint_jwt('cove-admin')}"}
    owner_id = f"q-{uuid.uuid4().hex[:8]}"
    owner = OrganizationsApi(api(cove, mint_jwt(owner_id)))
    org = owner.create_organization(CreateOrganization(name="Quota", default_region_id="us"))
    base = f"{cove.api_url}/organizations/{org.id}"
    r = requests.patch(f"{base}/quota", json={"maxCpuPerSandbox": 12}, headers=admin, timeout=10)
    assert r.status_code == 204, r.text
    assert owner.get_organization(org.id).max_cpu_per_sandbox == 12
    user_headers = {"Authorization": f"Bearer {mint_jwt(owner_id)}"}
    r = requests.patch(f"{base}/quota", json={"maxCpuPerSandbox": 99}, headers=user_headers, timeout=10)
    assert r.status_code == 403 and r.json()["source"] == "DAYTONA_API"

    r = requests.post(f"{base}/suspend", json={"reason": "billing"}, headers=admin, timeout=10)
    assert r.status_code == 204, r.text
    got = owner.get_organization(org.id)
    assert got.suspended is True and got.suspension_reason == "billing"
    r = requests.post(f"{base}/unsuspend", headers=admin, timeout=10)
    assert r.status_code == 204, r.text
    assert owner.get_organization(org.id).suspended is False

    r = requests.get(f"{cove.api_url}/users", headers=admin, timeout=10)
    assert r.status_code == 200 and owner_id in {u["id"] for u in r.json()}
    assert requests.get(f"{cove.api_url}/users", headers=user_headers, timeout=10).status_code == 403

    # Regenerating a user's key pair: system admins only, 201 with an empty body.
    regen = f"{cove.api_url}/users/{owner_id}/regenerate-key-pair"
    assert requests.post(regen, headers=user_headers, timeout=10).status_code == 403
    r = requests.post(regen, headers=admin, timeout=10)
    assert r.status_code == 201 and r.content == b"", r.text
    r = requests.post(f"{cove.api_url}/users/nobody-{owner_id}/regenerate-key-pair", headers=admin, timeout=10)
    assert r.status_code == 404 and r.json()["source"] == "DAYTONA_API"


def test_linked_accounts(cove):
    import requests

    uid = f"l-{uuid.uuid4().hex[:8]}"
    other = f"l-{uuid.uuid4().hex[:8]}"
    users = UsersApi(api(cove, mint_jwt(uid)))
    provider_uid = uuid.uuid4().hex
    users.link_account(CreateLinkedAccount(provider="github", user_id=provider_uid))
    assert ("github", True) in {(p.provider, p.linked) for p in users.get_account_providers()}
    assert status_of(lambda: users.link_account(CreateLinkedAccount(provider="github", user_id=provider_uid))) == 409
    assert status_of(lambda: UsersApi(api(cove, mint_jwt(other))).link_account(
        CreateLinkedAccount(provider="github", user_id=provider_uid))) == 409
    assert status_of(lambda: users.link_account(CreateLinkedAccount(provider="nope", user_id="1"))) == 400
    url = f"{cove.api_url}/users/linked-accounts/github/{provider_uid}"
    headers = {"Authorization": f"Bearer {mint_jwt(uid)}"}
    assert requests.delete(url, headers=headers, timeout=10).status_code == 204
    r = requests.delete(url, headers=headers, timeout=10)
    assert r.status_code == 404 and r.json()["source"] == "DAYTONA_API"
    assert {(p.provider, p.linked) for p in users.get_account_providers()} >= {("github", False)}
