#!/usr/bin/env python3
"""An HTTP proxy in front of an S3 server (moto) that records and misbehaves, for tests.

    s3_proxy.py --upstream http://127.0.0.1:PORT --log FILE [--port 0]
                [--fault-rate 0.1] [--faults slowdown,internal,reset,truncate] [--seed 1]
                [--only-key SUBSTRING] [--require-key BUCKET=ACCESS_KEY_ID]

Every request is forwarded to --upstream (method, path, query, headers and body) and
the answer streamed back with its status, headers and Content-Length (HEAD answers keep
theirs), so the client sees S3. Each request is logged to --log as a JSON line: method,
path, the SigV4 access key id that signed it, and the fault injected if any.

With --fault-rate, that share of requests (optionally only those whose path contains
--only-key) fails in one of the chosen ways, seeded:
  slowdown  503 with S3's SlowDown XML error body
  internal  500 with S3's InternalError XML error body
  reset     the connection is closed before any answer
  truncate  the answer's headers and half its body, then the connection is closed
The rate can be changed while running: POST /__proxy/fault-rate with a number body.

With --require-key, a request for BUCKET (path-style) not signed with ACCESS_KEY_ID is
refused as S3 refuses it (403 AccessDenied) and never reaches the upstream: a bucket
only its own credentials open, as PO.DAAC's is (moto checks no credentials).
Prints "READY <port>" once listening.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "denied": (403, "AccessDenied", "Access Denied"),
}
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}
AKID = re.compile(r"Credential=([A-Z0-9]+)/")


class Handler(BaseHTTPRequestHandler):
    server_version = "s3-proxy"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path.startswith("/__proxy/fault-rate"):
            st["rate"] = float(body or b"0")
            return self.answer(200, {}, b"ok")
        auth = self.headers.get("Authorization", "")
        m = AKID.search(auth) or AKID.search(self.path.replace("%2F", "/"))
        bucket, _, key_id = (st["require"] or "").partition("=")
        denied = bool(bucket) and urlparse(self.path).path.startswith(f"/{bucket}/") and (m.group(1) if m else None) != key_id
        with st["lock"]:
            eligible = st["only"] is None or st["only"] in self.path
            fault = "denied" if denied else None
            if not denied and eligible and st["rng"].random() < st["rate"]:
                fault = st["rng"].choice(st["faults"])
            entry = {"method": self.command, "path": self.path, "access_key_id": m.group(1) if m else None, "fault": fault}
            with open(st["log"], "a") as f:
                f.write(json.dumps(entry) + "\n")
        if fault in ERRORS:
            status, code, message = ERRORS[fault]
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<Resource>{urlparse(self.path).path}</Resource><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
            ).encode()
            head = self.command == "HEAD"
            return self.answer(status, {"Content-Type": "application/xml", "x-amz-request-id": "proxy"}, xml, head=head)
        if fault == "reset":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        up = urlparse(st["upstream"])
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP}
        if fault == "truncate" and data:
            self.send_response(resp.status)
            for k, v in out.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.answer(resp.status, out, data, head=self.command == "HEAD")
        conn.close()

    def answer(self, status: int, headers: dict, data: bytes, head: bool = False):
        self.send_response(status)
        has_length = False
        for k, v in headers.items():
            if k.lower() == "content-length":
                has_length = True
            self.send_header(k, v)
        if not has_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any  # noqa: N815


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default="slowdown,internal,reset,truncate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only-key", default=None)
    ap.add_argument("--require-key", default=None)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = {
        "upstream": args.upstream, "log": args.log, "rate": args.fault_rate,
        "faults": args.faults.split(","), "rng": random.Random(args.seed),
        "only": args.only_key, "require": args.require_key, "lock": threading.Lock(),
    }
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
