#!/usr/bin/env python3
"""Read a whole store back as a user does and compare every value with h5py's read of
the source granules, for stores of full-size days (where loading everything at once, as
check_store.py does, would take tens of gigabytes).

    read_back.py STORE --day DATE=GRANULE [--day ...] [--branch main] [--variables a,b]

For each day and each data variable of the store, the day's plane is read in bands of
the store's chunk rows (zarr through icechunk: virtual chunks fetched from the granules,
native ones from the store), each band compared raw (before CF decoding, so fill values
count too) with the same rows read by h5py from the granule. Bands cover every row and
column, so every window across every chunk border, the store's and the granule's, is
compared. The decoded time axis (xarray) must hold exactly the days given, in order.
Works with icechunk 1.x and 2.x. Prints a JSON summary; exits 1 on any difference, 2 on a
usage error, 3 if the check itself crashed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from _common import exit_now, json_stdout, open_repo, run_check  # first: sets HDF5_USE_FILE_LOCKING

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
import zarr  # noqa: E402


def compare_plane(array, t: int, granule: h5py.File, name: str) -> dict:
    """Every row band of day `t` of `array` against the granule's variable."""
    source = granule[name]
    rows, cols = array.shape[1], array.shape[2]
    band = array.chunks[1]
    res = {"bands": 0, "values": 0, "mismatch": 0, "store_chunks": array.chunks[1:],
           "source_chunks": list(source.chunks[1:]) if source.chunks else None}
    if source.shape[1:] != (rows, cols):
        res.update(ok=False, error=f"{name}: store plane {rows} x {cols}, granule {source.shape[1:]}")
        return res
    for r0 in range(0, rows, band):
        r1 = min(rows, r0 + band)
        got = np.asarray(array[t, r0:r1, :])
        want = source[0, r0:r1, :]
        if got.dtype != want.dtype:
            res.update(ok=False, error=f"{name}: store dtype {got.dtype}, granule {want.dtype}")
            return res
        diff = got != want
        n = int(diff.sum())
        if n and "first" not in res:
            i, j = np.argwhere(diff)[0]
            res["first"] = {"row": int(r0 + i), "col": int(j), "store": got[i, j].item(), "source": want[i, j].item()}
        res["mismatch"] += n
        res["bands"] += 1
        res["values"] += int(got.size)
    res["ok"] = res["mismatch"] == 0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--day", action="append", default=[], help="DATE=GRANULE (a local path), in time order")
    ap.add_argument("--branch", default="main")
    ap.add_argument("--variables", default="")
    args = ap.parse_args()
    out = json_stdout()
    days = []
    for d in args.day:
        date, _, path = d.partition("=")
        if not path:
            print(f"--day {d}: expected DATE=GRANULE", file=sys.stderr)
            exit_now(2, out)
        days.append((date, path))

    started = time.monotonic()
    session = open_repo(args.store).readonly_session(branch=args.branch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3, chunks=None)
        times = [str(np.datetime_as_string(t, unit="D")) for t in ds["time"].values]
    group = zarr.open_group(session.store, mode="r", zarr_format=3)
    names = [v for v in args.variables.split(",") if v] or sorted(
        n for n, a in group.arrays() if a.ndim == 3 and n not in ("time", "lat", "lon"))
    summary = {"store": args.store, "branch": args.branch, "times": times, "days": {}, "variables": names}
    ok = times == [d for d, _ in days]
    if not ok:
        summary["error"] = f"time axis {times} is not the days given {[d for d, _ in days]}"
    for t, (date, path) in enumerate(days):
        day = {}
        with h5py.File(path, "r", locking=False) as granule:
            for name in names:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    day[name] = compare_plane(group[name], t, granule, name)
                ok &= day[name]["ok"]
        summary["days"][date] = day
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["icechunk"] = __import__("icechunk").__version__
    summary["ok"] = bool(ok)
    print(json.dumps(summary, indent=1), file=out)
    exit_now(0 if ok else 1, out)


if __name__ == "__main__":
    run_check(main)
