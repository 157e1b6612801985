#!/usr/bin/env python3
"""A stand-in for PO.DAAC's s3credentials endpoint and Earthdata Login, for the tests.

    edl_standin.py --user U --password P --token T --lifetime S --log FILE [--port 0]

One server plays both sides of the flow the real services implement:

1. GET /s3credentials without the accessToken cookie -> 302 to
   /oauth/authorize?client_id=...&redirect_uri=<this>/redirect&response_type=code
2. POST /oauth/authorize with form field credentials=base64("user:pass") and header
   Origin: <the s3credentials origin> -> 302 to /redirect?code=...
   (wrong credentials: 401; a missing or wrong Origin: 400)
3. GET /redirect?code=... -> 302 to /s3credentials, setting the accessToken cookie
4. GET /s3credentials with that cookie, or with Authorization: Bearer <token> ->
   {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}; the expiration
   is formatted as PO.DAAC does ("2019-02-27 23:26:56+00:00") and lies --lifetime
   seconds ahead; every issue has a new access key id (ASIAEDL0001, ...).

Each issue is logged to --log as a JSON line (number, access key id, how the caller
authenticated, expiration). Prints "READY <port>" once listening.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse


class Handler(BaseHTTPRequestHandler):
    server_version = "edl-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reply(self, status: int, body: object = None, headers: dict | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def cookie(self, name: str) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return None

    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        st = self.server.state
        if url.path == "/s3credentials":
            auth = self.headers.get("Authorization", "")
            if auth == f"Bearer {st['token']}":
                return self.issue("bearer")
            if auth.startswith("Bearer "):
                return self.reply(401, {"error": "invalid bearer token"})
            tok = self.cookie("accessToken")
            if tok is not None and tok in st["cookies"]:
                return self.issue("cookie")
            query = urlencode({
                "client_id": "podaac-s3credentials",
                "response_type": "code",
                "redirect_uri": f"{self.base}/redirect",
            })
            return self.reply(302, None, {"Location": f"{self.base}/oauth/authorize?{query}"})
        if url.path == "/redirect":
            code = parse_qs(url.query).get("code", [None])[0]
            if code not in st["codes"]:
                return self.reply(400, {"error": "unknown code"})
            st["codes"].discard(code)
            tok = secrets.token_hex(16)
            st["cookies"].add(tok)
            return self.reply(302, None, {
                "Location": f"{self.base}/s3credentials",
                "Set-Cookie": f"accessToken={tok}; Path=/; HttpOnly",
            })
        self.reply(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if url.path != "/oauth/authorize":
            return self.reply(404, {"error": "not found"})
        if self.headers.get("Origin") != self.base:
            return self.reply(400, {"error": "the Origin header must name the s3credentials endpoint"})
        want = base64.b64encode(f"{st['user']}:{st['password']}".encode()).decode()
        if form.get("credentials", [None])[0] != want:
            return self.reply(401, {"error": "invalid_credentials", "error_description": "Invalid user credentials"})
        code = secrets.token_hex(8)
        st["codes"].add(code)
        redirect = parse_qs(url.query).get("redirect_uri", [f"{self.base}/redirect"])[0]
        self.reply(302, None, {"Location": f"{redirect}?code={code}"})

    def issue(self, how: str):
        st = self.server.state
        with st["lock"]:
            st["issued"] += 1
            n = st["issued"]
        expires = datetime.now(timezone.utc) + timedelta(seconds=st["lifetime"])
        creds = {
            "accessKeyId": f"ASIAEDL{n:04d}",
            "secretAccessKey": f"edl-secret-{n}-{secrets.token_hex(8)}",
            "sessionToken": f"edl-session-{n}-{secrets.token_hex(16)}",
            "expiration": expires.strftime("%Y-%m-%d %H:%M:%S+00:00"),
        }
        with st["lock"], open(st["log"], "a") as f:
            f.write(json.dumps({"n": n, "access_key_id": creds["accessKeyId"], "via": how,
                                "secret": creds["secretAccessKey"], "session": creds["sessionToken"],
                                "expiration": creds["expiration"]}) + "\n")
        self.reply(200, creds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--lifetime", type=float, default=3600)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.state = {
        "user": args.user, "password": args.password, "token": args.token,
        "lifetime": args.lifetime, "log": args.log, "issued": 0,
        "codes": set(), "cookies": set(), "lock": threading.Lock(),
    }
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
