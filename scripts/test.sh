#!/usr/bin/env bash
# Installs the dependencies, builds with warnings as errors under AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every test: unit tests, then the integration tests
# against throwaway PostgreSQL clusters and real SMTP servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
build=build/test
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DWERROR=ON -DSANITIZE=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j 2 "$@"
