"""The DynamoDB table: infra/terraform against crates/store, then the store suite on a table
created from the Terraform definition in AWS DynamoDB Local."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HERE, ROOT, TF, binary, load_hcl, resources
from table_model import create_table_request, differences, from_create_request, terraform_table


@pytest.fixture(scope="module")
def code() -> dict:
    out = subprocess.run([binary("COVE_TABLE_DEFINITION_BIN", "cove-table-definition")],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_terraform_declares_the_table_the_code_creates(code):
    assert differences(code, terraform_table()) == []


@pytest.mark.parametrize("change", [
    "projection", "range key", "new index", "dropped index", "attribute type", "ttl", "billing",
])
def test_any_change_of_the_code_definition_is_a_difference(code, change):
    changed = copy.deepcopy(code)
    g = changed["globalSecondaryIndexes"]
    if change == "projection":
        g[1]["projection"] = "KEYS_ONLY"
    elif change == "range key":
        g[0]["rangeKey"] = "gsi1other"
    elif change == "new index":
        g.append({"name": "gsi4", "hashKey": "gsi4pk", "rangeKey": "gsi4sk", "projection": "ALL"})
    elif change == "dropped index":
        g.pop()
    elif change == "attribute type":
        changed["attributes"][2]["type"] = "N"
    elif change == "ttl":
        changed["ttlAttribute"] = "expiresAt"
    elif change == "billing":
        changed["billingMode"] = "PROVISIONED"
    assert differences(changed, terraform_table()), change


def test_the_table_is_protected_in_production():
    doc = load_hcl(TF / "modules" / "table" / "main.tf")
    (t,) = resources(doc, "aws_dynamodb_table").values()
    assert t["billing_mode"] == "PAY_PER_REQUEST"
    assert t["point_in_time_recovery"][0]["enabled"] is True
    assert t["server_side_encryption"][0]["enabled"] is True
    assert t["server_side_encryption"][0]["kms_key_arn"] == "${var.kms_key_arn}"
    assert t["deletion_protection_enabled"] == "${var.deletion_protection}"
    variables = {k: v for block in load_hcl(TF / "modules" / "table" / "variables.tf")["variable"] for k, v in block.items()}
    assert variables["deletion_protection"]["default"] is True


def dynamodb_local_dir() -> Path:
    d = os.environ.get("COVE_DYNAMODB_LOCAL_DIR")
    if d:
        return Path(d)
    cache = Path(os.environ.get("COVE_CACHE", ROOT / "tests" / ".cache"))
    jars = sorted((cache / "dynamodb-local").rglob("DynamoDBLocal.jar"))
    if not jars:
        pytest.fail("DynamoDB Local is not installed (scripts/lib.sh ensure_dynamodb_local) and COVE_DYNAMODB_LOCAL_DIR is unset")
    return jars[0].parent


def store_test_binaries() -> list[str]:
    env = os.environ.get("COVE_STORE_TEST_BINS")
    if env:
        return env.split(":")
    out = subprocess.run(
        ["cargo", "test", "--release", "--workspace", "--exclude", "cove-toolbox", "-p", "cove-store",
         "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    bins = []
    for line in out.splitlines():
        m = json.loads(line)
        if (m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]
                and "/crates/store#" in m["package_id"] and m["target"]["kind"] != ["bin"]):
            bins.append(m["executable"])
    return bins


def test_the_store_suite_passes_on_the_terraform_table(code, tmp_path):
    for tool in ("java", "unshare", "ip"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing")
    bins = store_test_binaries()
    assert bins, "no cove-store test binary"
    tf = terraform_table()
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(create_table_request(tf)))
    report_path = tmp_path / "report.json"
    rc = subprocess.run(
        ["unshare", "--net", sys.executable, str(HERE / "dynamodb_terraform.py"),
         str(dynamodb_local_dir()), str(definition), str(report_path), *bins]).returncode
    report = json.loads(report_path.read_text())
    assert rc == 0, f"store suite on the Terraform table failed: {report['binaries']}"
    assert report["created"], "the suite created no table"
    # what the code asked for, table by table, is what cove-table-definition prints
    code_no_ttl = dict(code, ttlAttribute=None)
    for req in report["code_requests"]:
        assert differences(code_no_ttl, from_create_request(req)) == [], req["TableName"]
    # and what DynamoDB Local holds is the Terraform table, TTL included
    desc = from_create_request(report["described"]["Table"])
    ttl = report["described_ttl"]["TimeToLiveDescription"]
    desc["ttlAttribute"] = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None
    assert differences(tf, desc) == []
