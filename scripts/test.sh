#!/usr/bin/env bash
# Runs every test: sets up the Python interop environment (pymacaroons,
# bolt11) once, then the Rust suites. Usage: ./scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/python-env.sh
cargo test --locked "$@"
