#!/usr/bin/env python3
"""Build an icechunk store of virtual references to MUR granules with VirtualiZarr.

This is what the Python updater does, so the Rust pipeline's stores can be compared with
it: each granule is parsed with VirtualiZarr's HDFParser (time/lat/lon loaded, data
variables virtual), then written with `to_icechunk` - the first file creates the arrays
and each later one is appended along `time` (`--mode append`, the default; the store's
global attributes are then the last file's) or all are `xr.concat`-ed first
(`--mode concat`). One commit per write.

    virtualizarr_store.py STORE FILE... [--spec 1|2] [--drop-variables a,b] [--mode append|concat]

STORE is a directory or s3://bucket/prefix; FILEs are paths or s3:// URLs (S3 reached
through the AWS_* environment). `--spec 1` needs icechunk 1.x (the production store's
format) or passes spec_version=1 to icechunk 2. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from _common import (ICECHUNK_MAJOR, chunk_container, common_prefix,  # first: sets HDF5_USE_FILE_LOCKING
                     container_credentials, exit_now, fail, json_stdout, object_store_registry, open_storage, to_url)

import icechunk  # noqa: E402
import virtualizarr  # noqa: E402
import xarray as xr  # noqa: E402
from virtualizarr import open_virtual_dataset  # noqa: E402
from virtualizarr.parsers import HDFParser  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--spec", type=int, choices=(1, 2), default=2)
    ap.add_argument("--drop-variables", default="", help="comma-separated variable names")
    ap.add_argument("--mode", choices=("append", "concat"), default="append")
    ap.add_argument("--container-prefix", help="virtual chunk container prefix (default: the files' common directory)")
    args = ap.parse_args()
    out = json_stdout()

    if args.spec == 2 and ICECHUNK_MAJOR < 2:
        fail(f"--spec 2 needs icechunk 2.x, this is {icechunk.__version__}")
    urls = [to_url(f) for f in args.files]
    prefix = args.container_prefix or common_prefix(urls)
    if not all(u.startswith(prefix) for u in urls):
        fail(f"container prefix {prefix} does not cover every file")
    drop = [v for v in args.drop_variables.split(",") if v]

    registry = object_store_registry(urls)
    parser = HDFParser()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vdss = [open_virtual_dataset(u, registry=registry, parser=parser, drop_variables=drop) for u in urls]

    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(chunk_container(prefix))
    create = dict(authorize_virtual_chunk_access=container_credentials([prefix]))
    if ICECHUNK_MAJOR >= 2:
        create["spec_version"] = args.spec
    repo = icechunk.Repository.create(open_storage(args.store), config, **create)

    snapshots = []
    if args.mode == "concat":
        combined = xr.concat(vdss, dim="time", coords="minimal", compat="override", combine_attrs="override")
        batches = [(combined, None)]
    else:
        batches = [(vds, None if i == 0 else "time") for i, vds in enumerate(vdss)]
    for ds, append_dim in batches:
        session = repo.writable_session("main")
        ds.vz.to_icechunk(session.store, append_dim=append_dim)
        snapshots.append(session.commit(f"virtualizarr_store.py: {len(ds.time)} time step(s)"))

    print(json.dumps({
        "store": args.store,
        "spec_version": args.spec,
        "icechunk": icechunk.__version__,
        "virtualizarr": virtualizarr.__version__,
        "xarray": xr.__version__,
        "container_prefix": prefix,
        "files": urls,
        "variables": sorted(vdss[0].data_vars),
        "snapshots": snapshots,
    }, indent=1), file=out)
    exit_now(0, out)


if __name__ == "__main__":
    sys.exit(main())
