#!/usr/bin/env bash
# The production rehearsal: every era of the record at full size (17999 × 36000), on moto
# S3 behind counting, fault-injecting proxies, listed by the CMR stand-in and read with
# Earthdata credentials that expire mid-run, through both state machines with the release
# handler binaries, each Lambda under the memory, CPU share and timeout of the CDK app's
# synthesized prod template. Prints the report and writes it (markdown and JSON) to
# target/rehearsal/full/. Granules are written once, into target/rehearsal/granules/.
#
# About 30 minutes on a 2-core machine after the build; `.ci/run` runs a reduced form
# (two days) on every change.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
# shellcheck source=env.sh
source scripts/env.sh

echo "== release build (the handlers and the CLI the rehearsal runs)"
cargo build --release --workspace --bins
echo "== the rehearsal (its driver is a debug test binary: it only orchestrates)"
cargo test --workspace --test rehearsal -- --ignored --exact full --nocapture
