#!/usr/bin/env python3
"""Print every node's zarr.json on an icechunk store's branch as one JSON document.

The shape is that of shared/reference/virtualizarr-store-layout.json: the root group's
metadata under "group", each array's under its path, keys sorted, values exactly as
stored (read raw from the store, not re-serialised by zarr).

    dump_store_layout.py STORE [--branch main]
"""

from __future__ import annotations

import argparse
import json
import sys

from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from _common import exit_now, json_stdout, open_repo


async def collect(store) -> dict:
    out = {}
    keys = [k async for k in store.list() if k == "zarr.json" or k.endswith("/zarr.json")]
    for key in sorted(keys):
        buf = await store.get(key, prototype=default_buffer_prototype())
        node = "group" if key == "zarr.json" else key[: -len("/zarr.json")]
        out[node] = json.loads(buf.to_bytes())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--branch", default="main")
    args = ap.parse_args()
    out = json_stdout()
    session = open_repo(args.store).readonly_session(branch=args.branch)
    layout = sync(collect(session.store))
    ordered = {"group": layout.pop("group")} if "group" in layout else {}
    ordered.update(sorted(layout.items()))
    print(json.dumps(ordered, indent=1), file=out)
    exit_now(0, out)


if __name__ == "__main__":
    sys.exit(main())
