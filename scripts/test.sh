#!/usr/bin/env bash
# The test command (CI runs exactly this): install the tooling, check formatting and
# lints, then build and run every test, and the production rehearsal's reduced form.
# Servers the tests need (moto, the stand-ins) are started by the tests themselves, so
# after one bootstrap plain `cargo test` works too.
#
# On two cores the run is mostly compiling; what needs no CPU of its own overlaps it: the
# test-only installs run while clippy compiles, and the release build (for the
# rehearsal) runs, at a lower priority, while the tests wait on their servers.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p target

# Each step's start says how long the run has taken so far, so CI's log shows where
# the time goes.
step() { printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
finish() {
  local rc=$?
  # A background job still running when a step failed has nothing left to do.
  jobs -p | xargs -r kill 2>/dev/null || true
  step "done (exit $rc)"
}
trap finish EXIT

# wait_for PID LOG WHAT: wait for a background job, showing its log; fail if it failed.
wait_for() {
  local rc=0
  wait "$1" || rc=$?
  cat "$2"
  if ((rc != 0)); then
    echo "$3 failed (exit $rc)" >&2
    exit 1
  fi
}

step "bootstrap: the build's Python venv (cmake for the bundled HDF5)"
scripts/bootstrap.sh build
# shellcheck source=env.sh
source scripts/env.sh
scripts/bootstrap.sh > target/bootstrap.log 2>&1 &
bootstrap=$!

step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy (meanwhile: the test-only installs)"
cargo clippy --workspace --all-targets -- -D warnings
wait_for $bootstrap target/bootstrap.log "scripts/bootstrap.sh"

step "infra tests (CDK app: synth every stage offline, cdk-nag, npm run synth + cfn-lint)"
(cd infra && npm test)
step "cargo build --bins, cargo test --no-run (the handlers tests/sfn.rs runs, and the tests)"
cargo build --workspace --bins
cargo test --workspace --all-targets --no-run
# The rehearsal runs the handlers as they ship (release), under Lambda's limits; its
# driver is the debug test binary built above. Cargo locks target/debug and
# target/release apart, so the release build goes on beside the tests. Its per-crate
# times are in target/cargo-timings/.
step "cargo build --release --bins, in the background (the handlers and the CLI the rehearsal runs)"
nice -n 10 cargo build --release --workspace --bins --timings > target/release-build.log 2>&1 &
release=$!
step "cargo test"
cargo test --workspace --all-targets
cargo test --workspace --doc
step "waiting for the release build"
wait_for $release target/release-build.log "cargo build --release"
# --workspace: the features the tests were built with above, so nothing is rebuilt.
step "the production rehearsal, reduced: two full-size days through both machines under Lambda's limits"
cargo test --workspace --test rehearsal -- --ignored --exact reduced --nocapture
