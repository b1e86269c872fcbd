#!/usr/bin/env bash
# Installs the dependencies, builds, and runs one real sweep against a throwaway local
# PostgreSQL and a local SMTP catcher, then shows the emails and the events it produced.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target recovery-worker
RW_BIN="$PWD/build/release/worker/recovery-worker" \
  PYTHONPATH="$PWD/tests/support" PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 scripts/demo.py "$@"
