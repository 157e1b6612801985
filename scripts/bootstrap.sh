#!/usr/bin/env bash
# Install what the tests need outside cargo: two Python 3.12 virtualenvs at the repo root.
#   .venv/      cmake (>= 3.26, for the bundled HDF5), icechunk 2, VirtualiZarr 2.8, moto, ...
#   .venv-ic1/  icechunk 1.x + VirtualiZarr 2.5, to build spec-v1 stores like production's
# and the npm packages of the CDK app (infra/) and of the state-machine harness (tests/sfn/),
# each from its package-lock.json.
# Idempotent: a venv whose requirement files are unchanged since its last install is left
# alone (a stamp holds their checksum), so a second run takes about a second.
# Exports nothing; `source scripts/env.sh` afterwards.
# `bootstrap.sh build` sets up only .venv (enough to build and run mursst itself).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Python 3.12: pyenv's on CI machines, else any python3.12 on PATH.
find_python() {
  local cand="${PYENV_ROOT:-$HOME/.pyenv}/versions/3.12.1/bin/python3"
  if [[ -x "$cand" ]]; then echo "$cand"; return; fi
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    command -v python3.12; return
  fi
  echo "bootstrap: no Python 3.12 found (tried \$PYENV_ROOT/versions/3.12.1 and python3.12)" >&2
  exit 1
}

# make_venv DIR REQUIREMENTS CONSTRAINTS CHECK: (re)install DIR unless its stamp is current.
make_venv() {
  local dir="$1" req="$2" con="$3" check="$4"
  local stamp="$dir/.mursst-stamp"
  local want
  want="$(cat "$req" "$con" | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$dir/bin/python" -c '' 2>/dev/null; then
    echo "bootstrap: $dir up to date"
    return
  fi
  local start=$SECONDS
  if [[ ! -x "$dir/bin/python" ]]; then
    echo "bootstrap: creating $dir with $PY"
    "$PY" -m venv "$dir"
  fi
  echo "bootstrap: installing $req into $dir"
  "$dir/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    -r "$req" -c "$con"
  "$dir/bin/python" -c "$check"
  echo "$want" > "$stamp"
  echo "bootstrap: $dir ready in $((SECONDS - start)) s"
}

PY="$(find_python)"
make_venv .venv scripts/requirements.txt scripts/constraints.txt \
  'import icechunk, virtualizarr, xarray, zarr, netCDF4, h5py, h5netcdf, kerchunk, s3fs, obstore, moto.server, boto3, cmake'
if [[ "${1:-}" == "build" ]]; then
  exit 0
fi
make_venv .venv-ic1 scripts/requirements-ic1.txt scripts/constraints-ic1.txt \
  'import icechunk, virtualizarr, xarray, zarr, h5py; from virtualizarr.parsers import HDFParser; assert icechunk.__version__.startswith("1.")'

# npm packages: `npm ci` in DIR unless DIR/node_modules was installed from this very lock
# file by this Node version (the stamp holds both). The CDK app's (infra/) and the
# state-machine harness's (tests/sfn/: aws-local-stepfunctions, asl-validator).
npm_ci() {
  local dir="$1" what="$2"
  local stamp="$dir/node_modules/.mursst-stamp"
  if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: npm not found: $what need Node.js >= 20 and npm" >&2
    exit 1
  fi
  local want
  want="$( (cat "$dir/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bootstrap: $dir/node_modules up to date"
    return
  fi
  local start=$SECONDS
  echo "bootstrap: npm ci in $dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
  echo "bootstrap: $dir/node_modules ready in $((SECONDS - start)) s"
}
npm_ci infra "the infra tests"
npm_ci tests/sfn "the state-machine tests (tests/sfn.rs)"

# Report what the tests will use (from package metadata: importing would take seconds).
report() {
  "$1/bin/python" - "$1" "${@:2}" <<'PY'
import sys
from importlib.metadata import version
print(f"bootstrap: {sys.argv[1]}: " + ", ".join(f"{p} {version(p)}" for p in sys.argv[2:]))
PY
}
report .venv icechunk virtualizarr xarray zarr moto cmake
report .venv-ic1 icechunk virtualizarr xarray zarr
