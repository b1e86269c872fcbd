#!/usr/bin/env bash
# Checks that every C source and header is formatted as .clang-format says (clang-format 14,
# Debian 12's). With --fix, formats them in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
  echo "formatting: ${#files[@]} files as .clang-format says"
fi
