"""Runs test binaries against AWS DynamoDB Local whose tables are created from infra/terraform.

    unshare --net python3 dynamodb_terraform.py JAR_DIR DEFINITION.json REPORT.json BIN...

Inside a private network namespace (DynamoDB Local has no bind-address flag): starts DynamoDB
Local, and in front of it a small HTTP proxy. Every CreateTable the binaries send (the store's
`ensure_table`, i.e. the code's definition) is recorded, then replaced by the Terraform
definition (DEFINITION.json: the CreateTable body and the TTL attribute) under the same table
name, followed by UpdateTimeToLive; everything else passes unchanged (DynamoDB Local does not
verify request signatures). The binaries get COVE_TEST_DYNAMODB_ENDPOINT=the proxy. REPORT.json
receives the recorded code requests, a DescribeTable of one created table and each binary's
exit status; the exit status is the first failing binary's.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

DDB_PORT = 8000
TARGET = "X-Amz-Target"


def main() -> int:
    jar_dir, definition_path, report_path, *bins = sys.argv[1:]
    definition = json.load(open(definition_path))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    java = subprocess.Popen(
        ["java", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
         "-sharedDb", "-inMemory", "-disableTelemetry", "-port", str(DDB_PORT)],
        cwd=jar_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = {"code_requests": [], "created": [], "binaries": {}}
    lock = threading.Lock()
    try:
        wait_port(DDB_PORT)
        server = proxy(definition, report, lock)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = dict(os.environ, COVE_TEST_DYNAMODB_ENDPOINT=f"http://127.0.0.1:{port}")
        status = 0
        for b in bins:
            print(f"--- {os.path.basename(b)} against DynamoDB Local, tables from infra/terraform", file=sys.stderr)
            rc = subprocess.run([b, "--test-threads=4"], env=env).returncode
            report["binaries"][b] = rc
            status = status or rc
        if report["created"]:
            report["described"] = call("DescribeTable", {"TableName": report["created"][0]})[1]
            report["described_ttl"] = call("DescribeTimeToLive", {"TableName": report["created"][0]})[1]
        server.shutdown()
        return status
    finally:
        json.dump(report, open(report_path, "w"), indent=1)
        java.kill()


def wait_port(port: int) -> None:
    for _ in range(240):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("DynamoDB Local did not start")


def call(op: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", DDB_PORT, timeout=30)
    h = dict(headers or {})
    h.setdefault("Content-Type", "application/x-amz-json-1.0")
    h.setdefault("Authorization", "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0")
    h[TARGET] = f"DynamoDB_20120810.{op}"
    conn.request("POST", "/", json.dumps(body), h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data or b"{}")


def proxy(definition: dict, report: dict, lock: threading.Lock) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = self.headers.get(TARGET, "")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            if target.endswith(".CreateTable"):
                code = json.loads(body)
                name = code["TableName"]
                with lock:
                    report["code_requests"].append(code)
                swapped = dict(definition["create"], TableName=name)
                body = json.dumps(swapped).encode()
            conn = http.client.HTTPConnection("127.0.0.1", DDB_PORT, timeout=120)
            conn.request("POST", self.path, body, headers)
            r = conn.getresponse()
            data = r.read()
            conn.close()
            if target.endswith(".CreateTable") and r.status == 200:
                if definition.get("ttl"):
                    status, answer = call("UpdateTimeToLive", {"TableName": name, "TimeToLiveSpecification": {
                        "AttributeName": definition["ttl"], "Enabled": True}})
                    if status != 200:
                        raise RuntimeError(f"UpdateTimeToLive: {status} {answer}")
                with lock:
                    report["created"].append(name)
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


if __name__ == "__main__":
    sys.exit(main())
