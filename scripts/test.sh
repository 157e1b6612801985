#!/usr/bin/env bash
# The test command (CI runs exactly this): install the tooling, check formatting and
# lints, then build and run every test. Servers the tests need (moto) are started by the
# tests themselves, so after one bootstrap plain `cargo test` works too.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
# shellcheck source=env.sh
source scripts/env.sh

echo "== infra tests (CDK app: synth every stage offline, cdk-nag)"
(cd infra && npm test)
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build --bins (the Lambda handlers tests/sfn.rs runs)"
cargo build --workspace --bins
echo "== cargo test"
cargo test --workspace --all-targets
cargo test --workspace --doc
