"""infra/kubernetes, rendered kustomize-style: every object validates against the Kubernetes
schemas (kubernetes-validate) and the SpinApp against SpinKube's own CRD schema."""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import HERE, OVERLAYS, find

KUBERNETES_VERSION = "1.31.0"
CRD = HERE / "data" / "spinkube" / "core.spinkube.dev_spinapps.yaml"


def spinapp_schema(version: str) -> dict:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["metadata"]["name"] == "spinapps.core.spinkube.dev"
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return v["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(rendered, overlay):
    objects = rendered[overlay]
    assert len(objects) >= 10
    checked = 0
    for o in objects:
        if o["kind"] == "SpinApp":
            continue
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{overlay}: {o['kind']}/{o['metadata']['name']}: {e.message} at {list(e.path)}")
        checked += 1
    assert checked == len(objects) - 1


def test_an_invalid_object_is_refused():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_spinapp_validates_against_the_spinkube_crd(rendered, overlay):
    app = find(rendered[overlay], "SpinApp", "cove")
    group, version = app["apiVersion"].split("/")
    assert group == "core.spinkube.dev"
    schema = spinapp_schema(version)
    jsonschema.validate(app, schema, cls=jsonschema.Draft7Validator)
    # the CRD schema prunes unknown fields instead of refusing them: check none are used
    props = schema["properties"]["spec"]["properties"]
    assert set(app["spec"]) <= set(props), set(app["spec"]) - set(props)
    for v in app["spec"]["variables"]:
        assert set(v) <= set(props["variables"]["items"]["properties"])


def test_a_wrong_spinapp_is_refused():
    schema = spinapp_schema("v1alpha1")
    bad = {"apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp", "metadata": {"name": "x"},
           "spec": {"image": "x", "replicas": "two"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft7Validator)


def test_the_runner_daemonset_gets_what_it_needs_from_the_node(rendered):
    ds = find(rendered["overlays/production"], "DaemonSet", "cove-runner")["spec"]["template"]["spec"]
    assert ds["hostNetwork"] and ds["hostPID"]
    assert ds["nodeSelector"] == {"cove.dev/runner": "true"}
    paths = {v["name"]: v["hostPath"]["path"] for v in ds["volumes"] if "hostPath" in v}
    assert paths["docker-socket"] == "/var/run/docker.sock"
    (agent,) = [c for c in ds["containers"] if c["name"] == "agent"]
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    # Docker on the node bind-mounts these into sandboxes: same paths inside and out
    for name in ("data", "volume-mounts"):
        assert mounts[name]["mountPath"] == paths[name]
        assert mounts[name]["mountPropagation"] == "Bidirectional"
    assert agent["securityContext"]["privileged"] is True


def test_secrets_are_not_in_the_base_or_production(rendered):
    for overlay in ("base", "overlays/production"):
        assert not [o for o in rendered[overlay] if o["kind"] == "Secret"], overlay
