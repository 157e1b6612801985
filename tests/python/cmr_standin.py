#!/usr/bin/env python3
"""A stand-in for NASA CMR's granule search on loopback, for the tests.

    cmr_standin.py --catalog FILE --log FILE [--port 0]

Serves GET /search/granules.umm_json like CMR: short_name and provider are checked
(unknown ones get CMR's 400 {"errors": [...]} body), temporal[]=START,END filters by the
granule's temporal extent, results are sorted by start date and paged by page_size, and
the CMR-Search-After response header is sent back by the client to get the next page.
Headers CMR-Hits, CMR-Took and CMR-Request-Id are set.

Each item is built from the recorded UMM-G item in tests/data/cmr/granule-umm-item.json
(a real MUR granule's record) with the catalog's day, URL, revision and checksum. The
catalog file is re-read on every request, so a test can replace a granule mid-run:

    {"short_name": "MUR-JPL-L4-GLOB-v4.1", "provider": "POCLOUD",
     "granules": [{"date": "2025-01-01", "url": "s3://bucket/key.nc",
                   "revision_id": 1, "revision_date": "2025-01-02T06:32:41.125Z",
                   "size": 123, "md5": "...", "concept_id": "G1-POCLOUD",
                   "direct_link": true, "nrt": false}],
     "faults": {"fail_first": 0, "fail_status": 503, "truncate_page": null,
                "short_page_items": null}}

Faults: the first `fail_first` requests get `fail_status` with a CMR error body;
page number `truncate_page` (1-based) is cut off mid-JSON; with `short_page_items`
every page holds at most that many items, fewer than page_size, as CMR may answer. Every request is logged to
--log as a JSON line (path, query, CMR-Search-After header, status). Prints
"READY <port>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "data", "cmr", "granule-umm-item.json")
SUFFIX = "090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def item(template: dict, g: dict) -> dict:
    """One UMM-G item for a catalog granule."""
    d = date.fromisoformat(g["date"])
    ur = d.strftime("%Y%m%d") + SUFFIX
    it = copy.deepcopy(template)
    meta, umm = it["meta"], it["umm"]
    meta["concept-id"] = g.get("concept_id", f"G{d.strftime('%Y%m%d')}-POCLOUD")
    meta["revision-id"] = g.get("revision_id", 1)
    meta["revision-date"] = g.get("revision_date", iso(datetime.combine(d + timedelta(days=1), datetime.min.time())))
    meta["native-id"] = ur if not g.get("nrt") else ur + "-nrt"
    umm["GranuleUR"] = meta["native-id"]
    end = datetime(d.year, d.month, d.day, 21, tzinfo=timezone.utc)
    umm["TemporalExtent"]["RangeDateTime"] = {
        "EndingDateTime": iso(end),
        "BeginningDateTime": iso(end - timedelta(days=1)),
    }
    files = umm["DataGranule"]["ArchiveAndDistributionInformation"]
    files[0]["Name"] = ur + ".nc"
    files[0]["SizeInBytes"] = g.get("size", 741869337)
    files[0]["Size"] = files[0]["SizeInBytes"] / 1048576
    files[0]["Checksum"]["Value"] = g.get("md5", "0" * 32)
    files[1]["Name"] = ur + ".nc.md5"
    urls = []
    for u in umm["RelatedUrls"]:
        u = dict(u)
        if u["Type"] == "GET DATA VIA DIRECT ACCESS":
            if not g.get("direct_link", True):
                continue
            u["URL"] = g["url"]
        elif "podaac-ops-cumulus" in u["URL"]:
            u["URL"] = u["URL"].replace("20250101090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1", ur)
        urls.append(u)
    umm["RelatedUrls"] = urls
    return it


class Handler(BaseHTTPRequestHandler):
    server_version = "cmr-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet; requests go to the JSON log
        pass

    def send_json(self, status: int, body: object, headers: dict | None = None, cut: bool = False):
        # Logged before the answer leaves: a client that has its answer finds it logged.
        state, entry = self.server.state, dict(self.log_entry, status=status)
        with state["lock"]:
            with open(state["log"], "a") as f:
                f.write(json.dumps(entry) + "\n")
        data = json.dumps(body).encode()
        if cut:
            data = data[: len(data) // 2]
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        state = self.server.state
        url = urlparse(self.path)
        query = parse_qs(url.query)
        after = self.headers.get("CMR-Search-After")
        self.log_entry = {"path": url.path, "query": query, "search_after": after}
        with state["lock"]:
            state["requests"] += 1
            n = state["requests"]
        catalog = json.load(open(state["catalog"]))
        faults = catalog.get("faults", {})
        if url.path != "/search/granules.umm_json":
            return self.send_json(404, {"errors": [f"The requested resource [{url.path}] was not found."]})
        if n <= faults.get("fail_first", 0):
            status = faults.get("fail_status", 503)
            return self.send_json(status, {"errors": ["Service temporarily unavailable, please retry"]})
        for name, want in (("short_name", catalog.get("short_name")), ("provider", catalog.get("provider"))):
            got = query.get(name, [None])[0]
            if got != want:
                return self.send_json(400, {"errors": [f"Parameter [{name}] with value [{got}] matched no collection."]})
        page_size = int(query.get("page_size", ["10"])[0])
        if page_size > 2000:
            return self.send_json(400, {"errors": ["page_size must be a number between 0 and 2000"]})
        grans = sorted(catalog.get("granules", []), key=lambda g: (g["date"], g.get("revision_id", 1)))
        if "temporal[]" in query:
            start, end = query["temporal[]"][0].split(",")
            lo = datetime.fromisoformat(start.replace("Z", "+00:00"))
            hi = datetime.fromisoformat(end.replace("Z", "+00:00"))

            def overlaps(g):
                d = date.fromisoformat(g["date"])
                e = datetime(d.year, d.month, d.day, 21, tzinfo=timezone.utc)
                return e - timedelta(days=1) <= hi and e >= lo

            grans = [g for g in grans if overlaps(g)]
        offset = 0
        if after:
            offset = int(json.loads(after)[0])
        # CMR may answer a page shorter than page_size while more remain.
        served = min(page_size, faults.get("short_page_items") or page_size)
        page = grans[offset : offset + served]
        page_no = offset // page_size + 1 if page_size else 1
        template = json.load(open(TEMPLATE))
        headers = {
            "CMR-Hits": str(len(grans)),
            "CMR-Took": "7",
            "CMR-Request-Id": str(uuid.uuid4()),
        }
        if page:
            headers["CMR-Search-After"] = json.dumps([str(offset + len(page)), "G-POCLOUD"])
        body = {"hits": len(grans), "took": 7, "items": [item(template, g) for g in page]}
        self.send_json(200, body, headers, cut=faults.get("truncate_page") == page_no)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.state = {"catalog": args.catalog, "log": args.log, "requests": 0, "lock": threading.Lock()}
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
