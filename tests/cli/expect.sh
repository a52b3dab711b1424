#!/usr/bin/env bash
# expect.sh STATUS PATTERN -- COMMAND...
# Runs COMMAND; passes if it exits with STATUS and its combined output matches the
# extended regular expression PATTERN (empty pattern: anything).
set -u
want_status=$1; pattern=$2; shift 2
[ "$1" = "--" ] && shift
out=$("$@" 2>&1 </dev/null)
status=$?
if [ "$status" != "$want_status" ]; then
  echo "FAIL: exit status $status, want $want_status: $*"; echo "$out" | head -20; exit 1
fi
if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
  echo "FAIL: output does not match /$pattern/: $*"; echo "$out" | head -20; exit 1
fi
echo "ok: $*"
