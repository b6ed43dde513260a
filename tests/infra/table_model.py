"""The DynamoDB table as infra/terraform declares it and as crates/store defines it, in one
shape (the JSON `cove-table-definition` prints), and the CreateTable request made from Terraform."""

from __future__ import annotations

from conftest import TF, load_hcl, resources


def terraform_table() -> dict:
    doc = load_hcl(TF / "modules" / "table" / "main.tf")
    (t,) = resources(doc, "aws_dynamodb_table").values()
    ttl = t.get("ttl", [{}])[0]
    return {
        "hashKey": t["hash_key"],
        "rangeKey": t["range_key"],
        "attributes": [{"name": a["name"], "type": a["type"]} for a in t.get("attribute", [])],
        "globalSecondaryIndexes": [
            {
                "name": g["name"],
                "hashKey": g["hash_key"],
                "rangeKey": g.get("range_key"),
                "projection": g["projection_type"],
                **({"nonKeyAttributes": sorted(g["non_key_attributes"])} if g.get("non_key_attributes") else {}),
            }
            for g in t.get("global_secondary_index", [])
        ],
        "billingMode": t["billing_mode"],
        "ttlAttribute": ttl.get("attribute_name") if ttl.get("enabled") else None,
    }


def differences(code: dict, tf: dict) -> list[str]:
    """Every way the two definitions differ, attribute by attribute, index by index."""
    out = []
    for k in ("hashKey", "rangeKey", "billingMode", "ttlAttribute"):
        if code.get(k) != tf.get(k):
            out.append(f"{k}: code {code.get(k)!r}, terraform {tf.get(k)!r}")
    ca = {a["name"]: a["type"] for a in code["attributes"]}
    ta = {a["name"]: a["type"] for a in tf["attributes"]}
    for n in sorted(ca.keys() | ta.keys()):
        if ca.get(n) != ta.get(n):
            out.append(f"attribute {n}: code {ca.get(n)!r}, terraform {ta.get(n)!r}")
    cg = {g["name"]: g for g in code["globalSecondaryIndexes"]}
    tg = {g["name"]: g for g in tf["globalSecondaryIndexes"]}
    for n in sorted(cg.keys() | tg.keys()):
        if n not in cg or n not in tg:
            out.append(f"index {n}: only in {'terraform' if n in tg else 'code'}")
            continue
        for k in sorted(cg[n].keys() | tg[n].keys()):
            if cg[n].get(k) != tg[n].get(k):
                out.append(f"index {n} {k}: code {cg[n].get(k)!r}, terraform {tg[n].get(k)!r}")
    return out


def create_table_request(tf: dict) -> dict:
    """CreateTable (without TableName) and the TTL attribute, from the Terraform definition."""
    def keys(h, r):
        ks = [{"AttributeName": h, "KeyType": "HASH"}]
        if r:
            ks.append({"AttributeName": r, "KeyType": "RANGE"})
        return ks

    req = {
        "AttributeDefinitions": [{"AttributeName": a["name"], "AttributeType": a["type"]} for a in tf["attributes"]],
        "KeySchema": keys(tf["hashKey"], tf["rangeKey"]),
        "BillingMode": tf["billingMode"],
    }
    if tf["globalSecondaryIndexes"]:
        req["GlobalSecondaryIndexes"] = [
            {
                "IndexName": g["name"],
                "KeySchema": keys(g["hashKey"], g["rangeKey"]),
                "Projection": {"ProjectionType": g["projection"],
                               **({"NonKeyAttributes": g["nonKeyAttributes"]} if g.get("nonKeyAttributes") else {})},
            }
            for g in tf["globalSecondaryIndexes"]
        ]
    return {"create": req, "ttl": tf["ttlAttribute"]}


def from_create_request(req: dict) -> dict:
    """The definition shape from a CreateTable request or a DescribeTable's TableDescription."""
    def hk(ks):
        return next(k["AttributeName"] for k in ks if k["KeyType"] == "HASH")

    def rk(ks):
        return next((k["AttributeName"] for k in ks if k["KeyType"] == "RANGE"), None)

    billing = req.get("BillingMode") or req.get("BillingModeSummary", {}).get("BillingMode")
    return {
        "hashKey": hk(req["KeySchema"]),
        "rangeKey": rk(req["KeySchema"]),
        "attributes": [{"name": a["AttributeName"], "type": a["AttributeType"]} for a in req["AttributeDefinitions"]],
        "globalSecondaryIndexes": [
            {"name": g["IndexName"], "hashKey": hk(g["KeySchema"]), "rangeKey": rk(g["KeySchema"]),
             "projection": g["Projection"]["ProjectionType"]}
            for g in req.get("GlobalSecondaryIndexes", [])
        ],
        "billingMode": billing,
        "ttlAttribute": None,
    }
