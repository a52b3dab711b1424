#!/usr/bin/env bash
# Checks that every C++ source in git follows the repo's .clang-format (a few seconds).
# Usage: scripts/check-format.sh [--fix]   (--fix rewrites the files in place)
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -- '*.cpp' '*.h' '*.cc' '*.inc' | grep -v -e '^tests/fuzz/corpus/' -e '^tests/isa/' -e '^guest/')  # tests/isa: assembler headers; guest/: the guest's C programs
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=$(printf '%s\0' "${files[@]}" |
  xargs -0 -n 20 -P "$(nproc)" sh -c 'for f; do clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done' sh)
if [ -n "$bad" ]; then
  echo "$bad" | sort | head -30
  echo "check-format: $(echo "$bad" | wc -l) files differ from .clang-format; run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files follow .clang-format"
