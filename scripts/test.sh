#!/usr/bin/env bash
# Runs every test: installs what is missing, checks the format (.clang-format), builds,
# runs the unit tests, the guest ISA tests and the image checks with CTest, then the unit
# tests again under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh

echo "== format (.clang-format) =="
scripts/check-format.sh

echo "== build (RelWithDebInfo) =="
scripts/build.sh build
echo "== tests =="
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== build (ASan + UBSan, unit tests only) =="
# Only the unit test binary: the rest (daemons, control plane, guest programs) is not run here.
cmake -S . -B build-asan -G Ninja -DNIMBUS_SANITIZE=ON -DNIMBUS_GUEST_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan --target nimbus_unit_tests
echo "== unit tests under ASan + UBSan =="
# One process for all of them (one sanitizer start-up instead of one per test).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  build-asan/nimbus_unit_tests --gtest_brief=1
