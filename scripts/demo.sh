#!/usr/bin/env bash
# The main job on the embedded default: no AWS, no NASA. Installs the build tooling it
# needs (cmake >= 3.26 for the bundled HDF5), then runs `mursst demo`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh build >&2
# shellcheck source=env.sh
source scripts/env.sh
exec cargo run --release --quiet -- demo "$@"
