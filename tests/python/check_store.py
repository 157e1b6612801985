#!/usr/bin/env python3
"""Check that an icechunk store decodes to the same values as its source granules.

Opens the branch with icechunk + xarray (`xr.open_zarr(session.store, consolidated=False)`,
so virtual chunks are really fetched from the granules), opens the granules with
xarray's netCDF4 engine (concatenated along time, like open_mfdataset), and compares the decoded time axis and every data variable of
the store (NaN where the fill value is, so fills must match too). Prints a JSON summary;
exits 1 on any mismatch, 2 on a usage error, 3 if the check itself crashed.

    check_store.py STORE FILE... [--branch main] [--variables a,b]

STORE is a directory or s3://bucket/prefix; FILEs are paths or s3:// URLs, in time order.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

from _common import exit_now, json_stdout, open_repo, run_check, s3_env  # first: sets HDF5_USE_FILE_LOCKING

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def local_copies(files, tmp: Path):
    """Paths netCDF4 can open: local files as they are, S3 objects downloaded first."""
    out = []
    for f in files:
        if f.startswith("s3://"):
            import boto3

            env = s3_env()
            s3 = boto3.client("s3", endpoint_url=env["endpoint"], region_name=env["region"])
            bucket, key = f[5:].split("/", 1)
            dest = tmp / key.replace("/", "_")
            s3.download_file(bucket, key, str(dest))
            out.append(str(dest))
        else:
            out.append(f[len("file://"):] if f.startswith("file://") else f)
    return out


def compare(name: str, got: xr.DataArray, want: xr.DataArray) -> dict:
    res = {"shape": list(got.shape), "dtype": str(got.dtype)}
    if got.shape != want.shape:
        res.update(ok=False, error=f"shape {got.shape} != source {want.shape}")
        return res
    g, w = got.values, want.values
    if np.issubdtype(g.dtype, np.floating) or np.issubdtype(w.dtype, np.floating):
        g, w = g.astype("f8"), w.astype("f8")
        nan_g, nan_w = np.isnan(g), np.isnan(w)
        both = ~nan_g & ~nan_w
        diff = np.abs(g[both] - w[both])
        res.update(
            fill_cells=int(nan_g.sum()),
            fill_mismatch=int((nan_g != nan_w).sum()),
            max_abs_diff=float(diff.max()) if diff.size else 0.0,
        )
        res["ok"] = res["fill_mismatch"] == 0 and res["max_abs_diff"] == 0.0
    else:
        mismatch = int((g != w).sum())
        res.update(mismatch=mismatch, ok=mismatch == 0)
    if not res["ok"]:
        res["error"] = f"{name}: values differ from the source granules"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--branch", default="main")
    ap.add_argument("--variables", default="", help="comma-separated; default: every data variable of the store")
    args = ap.parse_args()
    out = json_stdout()

    session = open_repo(args.store).readonly_session(branch=args.branch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store_ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3)
        with tempfile.TemporaryDirectory() as tmp:
            paths = local_copies(args.files, Path(tmp))
            # open_mfdataset would need dask; concat of loaded files is the same thing here.
            parts = []
            for p in paths:
                with xr.open_dataset(p, engine="netcdf4") as ds:
                    parts.append(ds.load())
            src = xr.concat(parts, dim="time", data_vars="minimal", coords="minimal",
                            compat="override", combine_attrs="override")
    names = [v for v in args.variables.split(",") if v] or sorted(store_ds.data_vars)
    summary = {"store": args.store, "branch": args.branch, "files": len(args.files), "variables": {}}
    ok = True

    t_store = store_ds["time"].values
    t_src = src["time"].values
    time_ok = t_store.shape == t_src.shape and bool((t_store == t_src).all())
    summary["time"] = {"store": [str(t) for t in t_store], "source": [str(t) for t in t_src], "ok": time_ok}
    ok &= time_ok
    for coord in ("lat", "lon"):
        c_ok = bool(np.array_equal(store_ds[coord].values, src[coord].values))
        summary[coord] = {"ok": c_ok, "size": int(store_ds[coord].size)}
        ok &= c_ok
    for name in names:
        if name not in src:
            summary["variables"][name] = {"ok": False, "error": f"{name} is not in the source granules"}
            ok = False
            continue
        if name not in store_ds:
            summary["variables"][name] = {"ok": False, "error": f"{name} is not in the store"}
            ok = False
            continue
        res = compare(name, store_ds[name].load(), src[name])
        summary["variables"][name] = res
        ok &= res["ok"]
    summary["ok"] = ok
    print(json.dumps(summary, indent=1), file=out)
    exit_now(0 if ok else 1, out)


if __name__ == "__main__":
    run_check(main)
