"""`daytona.list(ListSandboxesQuery(...))` with every filter and sort of CONTRACT §4.6, through the
official SDK (which pages on with `nextCursor` until it is empty), against `cove up`.

Four sandboxes of one run, told apart by a run label: different sizes (created over REST, the
SDK's snapshot params carry no resources), one public, one stopped, one with a TTL. Every query
is scoped to the run's label, so other tests' sandboxes never count.
"""

import datetime
import time
import uuid

import pytest
import requests
from daytona import ListSandboxesQuery, SandboxState
from daytona_api_client import SandboxListSortDirection, SandboxListSortField

RUN = uuid.uuid4().hex[:10]
LABELS = {"cove-list-run": RUN}


def utc(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def fleet(daytona, cove):
    auth = {"Authorization": f"Bearer {cove.api_key}"}
    made = []
    for i, (cpu, memory, disk) in enumerate(((1, 1, 3), (2, 2, 4), (2, 1, 5), (1, 2, 3))):
        r = requests.post(f"{cove.api_url}/sandbox", headers=auth, timeout=180, json={
            "name": f"list-{RUN}-{i}", "cpu": cpu, "memory": memory, "disk": disk,
            "labels": {**LABELS, "i": str(i)}, "public": i == 1,
        })
        assert r.status_code == 200, r.text
        made.append(daytona.get(r.json()["id"]))
        time.sleep(0.05)  # distinct createdAt
    made[2].stop()
    made[3].set_ttl(600)
    for sb in made:
        sb.refresh_data()
    yield made
    for sb in made:
        sb.delete()


def names(query):
    return [sb.name for sb in DAYTONA.list(query)]


@pytest.fixture(autouse=True, scope="module")
def _daytona(daytona):
    global DAYTONA
    DAYTONA = daytona


def q(**kw):
    return ListSandboxesQuery(labels=LABELS, **kw)


def n(*idx):
    return [f"list-{RUN}-{i}" for i in idx]


def test_sizes_states_visibility_and_ttl(fleet):
    assert sorted(names(q())) == n(0, 1, 2, 3)
    assert sorted(names(q(min_cpu=2))) == n(1, 2)
    assert sorted(names(q(max_cpu=1))) == n(0, 3)
    assert sorted(names(q(min_memory_gib=2, max_memory_gib=2))) == n(1, 3)
    assert sorted(names(q(min_disk_gib=4))) == n(1, 2)
    assert sorted(names(q(max_disk_gib=4, min_cpu=2))) == n(1)
    assert names(q(min_cpu=3)) == []
    assert names(q(is_public=True)) == n(1)
    assert sorted(names(q(is_public=False))) == n(0, 2, 3)
    assert sorted(names(q(is_recoverable=False))) == n(0, 1, 2, 3)
    assert names(q(is_recoverable=True)) == []
    # The Python client sends states as `SandboxState.STOPPED` (str of its enum); strings too.
    assert names(q(states=[SandboxState.STOPPED])) == n(2)
    assert sorted(names(q(states=["started"]))) == n(0, 1, 3)
    ttl_at = utc(fleet[3].auto_destroy_at)
    assert names(q(auto_destroy_at_before=ttl_at + datetime.timedelta(seconds=1))) == n(3)
    assert names(q(auto_destroy_at_after=ttl_at + datetime.timedelta(minutes=1))) == []


def test_snapshots_targets_prefixes_and_times(fleet):
    snap, target = fleet[0].snapshot, fleet[0].target
    assert sorted(names(q(snapshots=[snap]))) == n(0, 1, 2, 3)
    assert names(q(snapshots=["no-such-snapshot:1"])) == []
    assert sorted(names(q(targets=[target]))) == n(0, 1, 2, 3)
    assert names(q(targets=["nowhere"])) == []
    assert names(q(name=f"LIST-{RUN}-2")) == n(2)  # prefix, case-insensitive
    assert names(q(id=fleet[1].id[:13].upper())) == n(1)
    c1, c2 = utc(fleet[1].created_at), utc(fleet[2].created_at)
    assert sorted(names(q(created_at_after=c1, created_at_before=c2))) == n(1, 2)
    assert sorted(names(q(created_at_after=c2))) == n(2, 3)
    # Naive datetimes (no tzinfo) are UTC.
    naive = c2.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    assert sorted(names(q(created_at_before=naive))) == n(0, 1, 2)
    newest = max(utc(sb.last_activity_at) for sb in fleet)
    assert sorted(names(q(last_activity_before=newest))) == n(0, 1, 2, 3)
    assert names(q(last_activity_after=newest + datetime.timedelta(minutes=5))) == []


def test_sort_and_order_across_pages(fleet, cove):
    asc = SandboxListSortDirection.ASC
    desc = SandboxListSortDirection.DESC
    # limit=1: every item is its own page, so the cursor carries the order.
    assert names(q(limit=1, sort=SandboxListSortField.NAME, order=asc)) == n(0, 1, 2, 3)
    assert names(q(limit=1, sort=SandboxListSortField.NAME, order=desc)) == n(3, 2, 1, 0)
    assert names(q(limit=2, sort=SandboxListSortField.CREATEDAT, order=asc)) == n(0, 1, 2, 3)
    assert names(q(limit=3, sort=SandboxListSortField.CREATEDAT, order=desc)) == n(3, 2, 1, 0)
    # Ties (cpu) break by id, and nothing repeats or goes missing across pages.
    by_cpu = names(q(limit=1, sort=SandboxListSortField.CPU, order=asc))
    assert sorted(by_cpu[:2]) == n(0, 3) and sorted(by_cpu[2:]) == n(1, 2)
    by_disk = names(q(limit=2, sort=SandboxListSortField.DISKGIB, order=desc))
    assert by_disk[:2] == n(2, 1) and sorted(by_disk[2:]) == n(0, 3)
    by_mem = names(q(sort=SandboxListSortField.MEMORYGIB, order=desc))
    assert sorted(by_mem[:2]) == n(1, 3)
    # The default: newest first.
    assert names(q(limit=1)) == n(3, 2, 1, 0)
    # Activity: recording some on sandbox 0 (written at most every 5 s) makes it the most recent.
    deadline = time.monotonic() + 30
    while names(q(sort=SandboxListSortField.LASTACTIVITYAT, order=desc))[0] != n(0)[0]:
        assert time.monotonic() < deadline, names(q(sort=SandboxListSortField.LASTACTIVITYAT))
        r = requests.post(f"{cove.api_url}/sandbox/{fleet[0].id}/last-activity",
                          headers={"Authorization": f"Bearer {cove.api_key}"}, timeout=30)
        assert r.status_code in (200, 201, 204), r.text
        time.sleep(1)
    assert names(q(sort=SandboxListSortField.LASTACTIVITYAT, order=asc))[-1] == n(0)[0]


@pytest.mark.parametrize("query", [
    "minCpu=two", "maxMemoryGiB=-1", "isPublic=yes", "isRecoverable=maybe",
    "createdAtAfter=last%20week", "states=running", "sort=owner", "order=up",
    "sort=name&cursor=not-a-cursor", "cursor=%%%", "limit=0", "labels=%7Bnot-json",
])
def test_malformed_filters_are_400_envelopes(cove, query):
    r = requests.get(f"{cove.api_url}/sandbox?{query}",
                     headers={"Authorization": f"Bearer {cove.api_key}"}, timeout=30)
    assert r.status_code == 400, (query, r.status_code, r.text)
    body = r.json()
    assert body["statusCode"] == 400 and body["message"] and body["path"].startswith("/api/sandbox"), body


def test_other_organizations_sandboxes_never_match(fleet, cove, other_org_key):
    """A second org's key lists nothing of the first, whatever the filters and sort."""
    other = {"Authorization": f"Bearer {other_org_key}"}
    for query in ("", f"name=list-{RUN}", "sort=name&order=asc", f"id={fleet[0].id}", "minCpu=0"):
        r = requests.get(f"{cove.api_url}/sandbox?{query}", headers=other, timeout=30)
        assert r.status_code == 200, r.text
        assert not [i for i in r.json()["items"] if i["id"] in {sb.id for sb in fleet}], (query, r.text)
