"""Shared helpers of the infrastructure checks (tests/infra): paths, HCL, rendered manifests,
the project's binaries."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

import hcl2
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kustomize  # noqa: E402

ROOT = HERE.parent.parent
INFRA = ROOT / "infra"
TF = INFRA / "terraform"
K8S = INFRA / "kubernetes"
OVERLAYS = ["base", "overlays/local", "overlays/production"]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def unq(v):
    """python-hcl2 keeps the quotes of string literals and block labels: strip them."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v[1:-1]  # a template with quotes inside interpolations
    return v


def clean(v):
    """A parsed HCL value with quotes stripped and python-hcl2's block markers dropped."""
    if isinstance(v, dict):
        return {unq(k): clean(x) for k, x in v.items() if k != "__is_block__"}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return unq(v)


def load_hcl(path: Path) -> dict:
    with open(path) as f:
        return clean(hcl2.load(f))


def tf_files() -> list[Path]:
    return sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)


def resources(doc: dict, kind: str) -> dict[str, dict]:
    out = {}
    for block in doc.get("resource", []):
        for k, byname in block.items():
            if k == kind:
                out.update(byname)
    return out


def tf_locals() -> dict:
    merged = {}
    for block in load_hcl(TF / "main.tf").get("locals", []):
        merged.update(block)
    return merged


def spin_manifest() -> dict:
    return tomllib.loads((ROOT / "spin.toml").read_text())


def binary(env: str, name: str) -> Path:
    """A built binary of the workspace: $ENV, else target/release/NAME (scripts/test.sh builds them)."""
    p = Path(os.environ.get(env) or TARGET / "release" / name)
    if not p.is_file():
        pytest.fail(f"{p} is missing: build it (cargo build --release --workspace --exclude cove-toolbox --bins) or set {env}")
    return p


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {d: kustomize.render(K8S / d) for d in OVERLAYS}


def find(objects: list[dict], kind: str, name: str) -> dict:
    hits = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} objects"
    return hits[0]
