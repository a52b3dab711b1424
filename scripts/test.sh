#!/usr/bin/env bash
# Runs every test: installs what is missing, checks the format (.clang-format), builds,
# runs the unit tests, the guest ISA tests and the image checks with CTest, then the unit
# tests again under ASan + UBSan (built in the background while CTest runs).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh

echo "== format (.clang-format) (at ${SECONDS} s) =="
scripts/check-format.sh

echo "== build (RelWithDebInfo) (at ${SECONDS} s) =="
# CI keeps line tables only (-g1, the same code): -g's variable locations cost about a
# third of the compile time, and a CI build is never debugged. Its unit test objects are
# unoptimised, without debug info and with precompiled headers (NIMBUS_TEST_COMPILE_OPTIONS,
# CMakeLists.txt): they drive the optimised layers, and compile in half the time.
# So is a build/ this script configures first (a fresh clone: what CI runs); a build/
# configured before (scripts/build.sh: -g, everything optimised) keeps its flags.
if [[ ${CI:-} == true || ! -f build/CMakeCache.txt ]]; then
  scripts/build.sh build "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
    "-DNIMBUS_TEST_COMPILE_OPTIONS=-O0;-g0"
else
  scripts/build.sh build
fi

# The ASan + UBSan build of the unit tests runs in the background while CTest runs (its
# boot tests take turns under a lock and leave a core idle), at the lowest CPU and I/O
# priority so that CTest's timing-sensitive tests keep the machine. Only the unit test
# binary: the rest (daemons, control plane, guest programs) is not run under ASan, and the
# unit tests exec no other binary. Line tables only (-g1): enough for the sanitizers'
# file:line reports. Its output goes to build-asan/build.log.
echo "== build (ASan + UBSan, unit tests only): in the background, build-asan/build.log (at ${SECONDS} s) =="
mkdir -p build-asan
asan_log=build-asan/build.log
# setsid: a process group of its own, stopped as a whole if this script exits early.
setsid nice -n 19 ionice -c 3 bash -c '
  set -e
  cmake -S . -B build-asan -G Ninja -DNIMBUS_SANITIZE=ON -DNIMBUS_GUEST_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 >/dev/null
  cmake --build build-asan --target nimbus_unit_tests' >"$asan_log" 2>&1 </dev/null &
asan_pid=$!
trap 'if [[ -n ${asan_pid:-} ]]; then kill -- -"$asan_pid" 2>/dev/null || true; fi' EXIT

echo "== tests (at ${SECONDS} s) =="
ctest_rc=0
ctest --test-dir build --output-on-failure -j "$jobs" || ctest_rc=$?
if ((ctest_rc != 0)); then
  echo "== CTest failed (exit $ctest_rc); the ASan build is stopped ==" >&2
  exit "$ctest_rc"
fi

echo "== waiting for the ASan + UBSan build (at ${SECONDS} s) =="
asan_rc=0
wait "$asan_pid" || asan_rc=$?
asan_pid=
if ((asan_rc != 0)); then
  echo "== the ASan + UBSan build failed (exit $asan_rc); the end of $asan_log: ==" >&2
  tail -n 60 "$asan_log" >&2
  exit "$asan_rc"
fi
tail -n 1 "$asan_log"
echo "== unit tests under ASan + UBSan (at ${SECONDS} s) =="
# One process for all of them (one sanitizer start-up instead of one per test).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  build-asan/nimbus_unit_tests --gtest_brief=1
echo "== done in ${SECONDS} s =="
