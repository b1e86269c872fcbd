#!/usr/bin/env bash
# Installs the dependencies, builds with warnings as errors under AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every test: unit tests, then the integration tests
# against throwaway PostgreSQL clusters and real SMTP servers on loopback, then each fuzz
# target for FUZZ_SECONDS (15) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
build=build/test
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DWERROR=ON -DSANITIZE=ON >/dev/null
cmake --build "$build" -j "$(nproc)"

# The libFuzzer targets (config loader, template renderer, MIME/header encoder, tokens):
# built with clang and run briefly after replaying the saved regression inputs. First, so
# that the test summary below is the last thing printed.
bash tests/fuzz/run.sh "${FUZZ_SECONDS:-15}"

ctest --test-dir "$build" --output-on-failure -j 2 "$@"
