"""A small kustomize-style renderer for infra/kubernetes (the subset it uses).

Supported kustomization fields: `resources` (YAML files and directories holding a
kustomization.yaml), `namespace`, `labels` (pairs added to metadata.labels), `images`
(newName/newTag by image name), `generatorOptions.disableNameSuffixHash`, `secretGenerator` and
`configMapGenerator` (literals), and `patches` with a `target` (kind, name) and an inline RFC 6902
patch. Anything else fails loudly, so the manifests never rely on a field this renderer ignores
(`kubectl kustomize` renders the same objects).
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import yaml

KNOWN = {
    "apiVersion", "kind", "resources", "namespace", "labels", "images",
    "generatorOptions", "secretGenerator", "configMapGenerator", "patches",
}


def render(directory: Path) -> list[dict]:
    directory = Path(directory)
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    objects: list[dict] = []
    for r in k.get("resources", []):
        path = directory / r
        if path.is_dir():
            objects.extend(render(path))
        else:
            objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    hashless = k.get("generatorOptions", {}).get("disableNameSuffixHash", False)
    for kind, key in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for g in k.get(key, []):
            if not hashless:
                raise ValueError("generators need generatorOptions.disableNameSuffixHash: true")
            data = dict(lit.split("=", 1) for lit in g.get("literals", []))
            obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": g["name"]}}
            if g.get("namespace"):
                obj["metadata"]["namespace"] = g["namespace"]
            if kind == "Secret":
                obj["type"] = "Opaque"
                obj["data"] = {n: base64.b64encode(v.encode()).decode() for n, v in data.items()}
            else:
                obj["data"] = data
            objects.append(obj)
    for p in k.get("patches", []):
        target = p["target"]
        ops = yaml.safe_load(p["patch"])
        hits = [o for o in objects
                if o.get("kind") == target.get("kind") and o["metadata"].get("name") == target.get("name")]
        if not hits:
            raise ValueError(f"{directory}: patch target {target} matches nothing")
        for o in hits:
            for op in ops:
                json_patch(o, op)
    for img in k.get("images", []):
        for o in objects:
            for c in containers(o):
                name, _, _tag = c["image"].rpartition(":") if ":" in c["image"].rsplit("/", 1)[-1] else (c["image"], "", "")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', _tag)}"
            if o.get("kind") == "SpinApp":
                name = o["spec"]["image"].rsplit(":", 1)[0]
                if name == img["name"]:
                    o["spec"]["image"] = f"{img.get('newName', name)}:{img['newTag']}"
    for o in objects:
        if k.get("namespace") and o["kind"] != "Namespace":
            o["metadata"]["namespace"] = k["namespace"]
        for lab in k.get("labels", []):
            o["metadata"].setdefault("labels", {}).update(lab["pairs"])
    return objects


def containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    if obj.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec.get("template", {}).get("spec", {})
    return pod.get("initContainers", []) + pod.get("containers", [])


def json_patch(obj: dict, op: dict) -> None:
    """One RFC 6902 operation (add, replace, remove)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = obj
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(idx, copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[idx] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[idx]
        else:
            raise ValueError(f"unsupported op {kind}")
        return
    if kind in ("replace", "remove") and last not in parent:
        raise ValueError(f"{op['path']}: no such member")
    if kind in ("add", "replace"):
        parent[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[last]
    else:
        raise ValueError(f"unsupported op {kind}")
