#!/usr/bin/env python3
"""Open a Kerchunk reference file the way fsspec/xarray users do and compare it with the
granule read by netCDF4.

Opens `reference://` with xarray's zarr engine (Zarr v2 metadata, chunks fetched through
fsspec from the byte ranges in the file), then compares every variable's raw values
(no mask/scale decoding, so fill values count too) and attributes with xarray's netCDF4
engine on the granule. Prints a JSON summary; exits 1 on a mismatch, 3 if it crashed.

    check_kerchunk.py REFS.json GRANULE.nc
"""

from __future__ import annotations

import argparse
import json

from _common import exit_now, json_stdout, run_check  # first: sets HDF5_USE_FILE_LOCKING

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("refs")
    ap.add_argument("granule")
    args = ap.parse_args()
    out = json_stdout()

    opts = dict(decode_cf=False, mask_and_scale=False)
    refs = xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={
            "consolidated": False,
            "zarr_format": 2,
            "storage_options": {"fo": args.refs, "asynchronous": True},
        },
        **opts,
    )
    src = xr.open_dataset(args.granule, engine="netcdf4", **opts)
    summary = {"variables": {}, "ok": True}
    if sorted(refs.variables) != sorted(src.variables):
        summary["ok"] = False
        summary["error"] = f"variables {sorted(refs.variables)} != {sorted(src.variables)}"
    for name in src.variables:
        if name not in refs.variables:
            continue
        a, b = refs[name], src[name]
        same_values = a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a.values, b.values))
        ignore = {"_FillValue"}  # zarr moves it to the array's fill_value
        attrs_a = {k: v for k, v in a.attrs.items() if k not in ignore}
        attrs_b = {k: v for k, v in b.attrs.items() if k not in ignore}
        same_attrs = sorted(attrs_a) == sorted(attrs_b) and all(
            np.array_equal(np.asarray(attrs_a[k]), np.asarray(attrs_b[k])) for k in attrs_b
        )
        ok = same_values and same_attrs and list(a.dims) == list(b.dims)
        summary["variables"][name] = {
            "dtype": str(a.dtype),
            "shape": list(a.shape),
            "dims": list(a.dims),
            "values": same_values,
            "attributes": same_attrs,
            "ok": ok,
        }
        summary["ok"] &= ok
    global_same = sorted(refs.attrs) == sorted(src.attrs) and all(
        np.array_equal(np.asarray(refs.attrs[k]), np.asarray(src.attrs[k])) for k in src.attrs
    )
    summary["global_attributes"] = global_same
    summary["ok"] &= global_same
    print(json.dumps(summary, indent=1), file=out)
    exit_now(0 if summary["ok"] else 1, out)


if __name__ == "__main__":
    run_check(main)
