"""Sandbox resource metrics with the official SDK against `cove up`: `get_metrics_latest()` (the
daemon's `GET /system/metrics` through the toolbox proxy) and `get_metrics(start, end)` (the
history the runner agent samples every `--metrics-interval-secs`, set to 1 s by conftest,
through `GET /api/sandbox/{id}/telemetry/metrics`).
"""

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from conftest import METRICS_INTERVAL_SECS


@pytest.fixture(scope="module")
def sandbox(daytona):
    sb = daytona.create()
    yield sb
    sb.delete()


def assert_sane(m):
    assert m.cpu_count >= 1, m
    assert 0 < m.mem_used <= m.mem_total, m
    assert 0 < m.disk_used <= m.disk_total, m
    assert 0 <= m.cpu_used_pct <= 100 * m.cpu_count, m
    assert m.mem_cache >= 0, m
    assert m.timestamp.tzinfo is not None, m


def test_the_sdk_takes_the_control_plane_path(cove):
    # No analytics API: the SDK asks the control plane's telemetry route.
    r = requests.get(f"{cove.api_url}/config", timeout=30)
    assert r.status_code == 200, r.text
    assert not r.json().get("analyticsApiUrl"), r.json()


def test_latest(sandbox):
    assert_sane(sandbox.get_metrics_latest())


def test_history_is_sampled_in_order(sandbox):
    interval = float(METRICS_INTERVAL_SECS)
    deadline = time.monotonic() + 20 * interval + 10
    samples = []
    while time.monotonic() < deadline:
        samples = sandbox.get_metrics()
        if len(samples) >= 2:
            break
        time.sleep(interval)
    assert len(samples) >= 2, samples
    stamps = [s.timestamp for s in samples]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps
    for s in samples:
        assert_sane(s)
    created = datetime.fromisoformat(sandbox.created_at.replace("Z", "+00:00"))
    now = datetime.now(timezone.utc)
    assert created - timedelta(seconds=5) <= stamps[0] and stamps[-1] <= now + timedelta(seconds=5), stamps
    # Samples come about one interval apart (never faster than the agent samples).
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    assert all(g >= interval * 0.5 for g in gaps), gaps

    # A range covering only the last sample answers it alone.
    last = stamps[-1]
    only = sandbox.get_metrics(last - timedelta(milliseconds=1), last + timedelta(milliseconds=1))
    assert [s.timestamp for s in only] == [last], only


def test_a_range_before_creation_is_empty(sandbox):
    created = datetime.fromisoformat(sandbox.created_at.replace("Z", "+00:00"))
    assert sandbox.get_metrics(created - timedelta(hours=2), created - timedelta(hours=1)) == []


def test_bad_ranges_are_400(cove, sandbox):
    headers = {"Authorization": f"Bearer {cove.api_key}"}
    url = f"{cove.api_url}/sandbox/{sandbox.id}/telemetry/metrics"
    for params in ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
                   {"from": "yesterday", "to": "2026-01-01T00:00:00Z"},
                   {"to": "2026-01-01T00:00:00Z"}):
        r = requests.get(url, params=params, headers=headers, timeout=30)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["statusCode"] == 400, r.text


def test_another_organization_sees_nothing(cove, sandbox, other_org_key):
    r = requests.get(f"{cove.api_url}/sandbox/{sandbox.id}/telemetry/metrics",
                     params={"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
                     headers={"Authorization": f"Bearer {other_org_key}"}, timeout=30)
    assert r.status_code == 404, r.text
