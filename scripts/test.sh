#!/usr/bin/env bash
# The test command (CI runs exactly this): install the tooling, check formatting and
# lints, then build and run every test, and the production rehearsal's reduced form.
# Servers the tests need (moto, the stand-ins) are started by the tests themselves, so
# after one bootstrap plain `cargo test` works too.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
# shellcheck source=env.sh
source scripts/env.sh

# Each step's start says how long the run has taken so far, so CI's log shows where
# the time goes.
step() { printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
trap 'step "done (exit $?)"' EXIT

step "infra tests (CDK app: synth every stage offline, cdk-nag, npm run synth + cfn-lint)"
(cd infra && npm test)
step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "cargo build --bins (the Lambda handlers tests/sfn.rs runs)"
cargo build --workspace --bins
step "cargo test"
cargo test --workspace --all-targets
cargo test --workspace --doc
# The rehearsal runs the handlers as they ship (release), under Lambda's limits; its
# driver is the debug test binary built above.
step "cargo build --release --bins (the handlers and the CLI the rehearsal runs)"
cargo build --release --workspace --bins
step "the production rehearsal, reduced: two full-size days through both machines under Lambda's limits"
cargo test --test rehearsal -- --ignored --exact reduced --nocapture
