#!/usr/bin/env bash
# The project's test command: fetches the public test data, then runs every test.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-test-data.sh
cargo test --all-targets "$@"
