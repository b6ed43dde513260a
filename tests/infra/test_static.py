"""Static checks of infra/: HCL formatting with HashiCorp's formatter, parseable HCL, variables and
outputs documented, checkov passing with a reason for every skipped check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HERE, INFRA, ROOT, TF, load_hcl, tf_files

SKIP_TF = re.compile(r"#checkov:skip=([A-Z0-9_]+)(?::(.*))?")
SKIP_K8S = re.compile(r"checkov\.io/skip\d+:\s*\"?([A-Z0-9_]+)(?:=([^\"]*))?")


def hcl_tools() -> Path:
    d = Path(os.environ.get("COVE_HCL_TOOLS") or Path(os.environ.get("COVE_CACHE", ROOT / "tests" / ".cache")) / "hcl-tools" / "node_modules")
    if not (d / "@cdktf" / "hcl-tools").is_dir():
        pytest.fail(f"@cdktf/hcl-tools is not installed in {d} (scripts/lib.sh ensure_infra_tools)")
    return d


def test_hcl_is_formatted_as_terraform_fmt_does():
    files = [str(p) for p in tf_files()] + [str(p) for p in TF.rglob("*.tfvars.example")]
    assert len(files) > 20
    r = subprocess.run(["node", str(HERE / "hclfmt.cjs"), *files], capture_output=True, text=True,
                       env=dict(os.environ, NODE_PATH=str(hcl_tools())))
    assert r.returncode == 0, f"not formatted (fix: node tests/infra/hclfmt.cjs --write FILE):\n{r.stdout}{r.stderr}"


def test_the_formatter_catches_a_misformatted_file(tmp_path):
    f = tmp_path / "bad.tf"
    f.write_text('resource "a" "b" {\n  x = 1\n    yyy = "2"\n}\n')
    r = subprocess.run(["node", str(HERE / "hclfmt.cjs"), str(f)], capture_output=True, text=True,
                       env=dict(os.environ, NODE_PATH=str(hcl_tools())))
    assert r.returncode == 1 and str(f) in r.stdout


def test_every_variable_and_output_is_documented():
    for path in tf_files():
        doc = load_hcl(path)
        for block in doc.get("variable", []):
            for name, v in block.items():
                assert v.get("description"), f"{path}: variable {name} has no description"
                assert v.get("type"), f"{path}: variable {name} has no type"
        for block in doc.get("output", []):
            for name, v in block.items():
                assert v.get("description"), f"{path}: output {name} has no description"


def test_root_inputs_are_validated():
    variables = {k: v for b in load_hcl(TF / "variables.tf")["variable"] for k, v in b.items()}
    for name in ("name", "aws_region", "vpc_id", "vpc_cidr", "private_subnet_ids", "public_subnet_ids",
                 "api_domain", "proxy_domain", "ami_id", "runner_agent_flags"):
        assert variables[name].get("validation"), f"variable {name} has no validation"
    outputs = {k for b in load_hcl(TF / "outputs.tf")["output"] for k in b}
    assert {"DAYTONA_API_URL", "proxy_domain"} <= outputs


def test_every_skipped_check_has_a_reason():
    seen = 0
    for p in sorted(INFRA.rglob("*")):
        if p.suffix not in (".tf", ".yaml", ".yml", ".Dockerfile"):
            continue
        for line in p.read_text().splitlines():
            for m in list(SKIP_TF.finditer(line)) + list(SKIP_K8S.finditer(line)):
                seen += 1
                assert m.group(2) and len(m.group(2).strip()) >= 10, f"{p}: {m.group(1)} skipped without a reason"
    assert seen > 0


def checkov() -> str:
    c = os.environ.get("COVE_CHECKOV") or str(Path(os.environ.get("COVE_CACHE", ROOT / "tests" / ".cache")) / "venv-checkov" / "bin" / "checkov")
    if not shutil.which(c):
        pytest.fail(f"checkov not found at {c} (scripts/lib.sh ensure_checkov)")
    return c


def test_checkov_passes_over_infra():
    r = subprocess.run(
        [checkov(), "--directory", str(INFRA), "--framework", "terraform", "kubernetes", "dockerfile",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false"))
    out = r.stdout[r.stdout.index("["):] if r.stdout.lstrip().startswith("[") else r.stdout[r.stdout.index("{"):]
    reports = json.loads(out)
    reports = reports if isinstance(reports, list) else [reports]
    frameworks = {rep["check_type"] for rep in reports}
    assert {"terraform", "kubernetes", "dockerfile"} <= frameworks, frameworks
    failed = [
        f"{rep['check_type']}: {c['check_id']} {c['resource']} ({c['file_path']})"
        for rep in reports for c in rep["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    for rep in reports:
        assert rep["summary"]["passed"] > 20, rep["check_type"]
        assert rep["summary"]["skipped"] == len(rep["results"]["skipped_checks"])
        for c in rep["results"]["skipped_checks"]:
            reason = (c.get("check_result") or {}).get("suppress_comment") or ""
            assert len(reason.strip()) >= 10, f"{c['check_id']} on {c['resource']}: no reason"
    assert r.returncode == 0, r.stderr[-2000:]
