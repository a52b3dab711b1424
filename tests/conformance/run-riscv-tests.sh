#!/usr/bin/env bash
# Build the rv64 riscv-tests ISA suites (p and v environments) and run them
# on nimbus.  Usage:
#   tests/conformance/run-riscv-tests.sh RISCV_TESTS_DIR NIMBUS_BIN [SUITE...]
# RISCV_TESTS_DIR is a riscv-tests checkout with its env/ submodule.
# SUITE defaults to: rv64ui rv64um rv64ua rv64uf rv64ud rv64uc rv64si rv64mi
#                    rv64uzba rv64uzbb rv64uzbs
# Environment: CC (default riscv64-linux-gnu-gcc), JOBS (parallel runs,
# default nproc), MAX_INSNS (default 50000000), KEEP=1 keeps the build dir,
# SKIP (space-separated test names to skip, e.g. "amocas_q").
# Prints one line per test and a final "N passed, M failed" line; exits 1 if
# any test failed (or failed to build).
set -u
if [ $# -lt 2 ]; then
  sed -n '2,13p' "$0"; exit 2
fi
SRC=$(cd "$1" && pwd) || exit 2
NIMBUS=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 2
SUITES=${*:-"rv64ui rv64um rv64ua rv64uf rv64ud rv64uc rv64si rv64mi rv64uzba rv64uzbb rv64uzbs"}
CC=${CC:-riscv64-linux-gnu-gcc}
JOBS=${JOBS:-$(nproc)}
MAX_INSNS=${MAX_INSNS:-50000000}
# Tests needing extensions nimbus does not implement (Zacas, Zfh, Zicond, ...).
SKIP=${SKIP:-"amocas_w amocas_d amocas_q"}
# Upstream builds every rv64 suite with -march=rv64g except rv64uc (rv64gc);
# tests such as rv64ui/jalr compute jump offsets assuming 4-byte
# instructions, so compressing them breaks the test.  ISA overrides this.
ISA=${ISA:-}
march_of() {  # suite -> -march value
  if [ -n "$ISA" ]; then echo "$ISA"; return; fi
  case $1 in
    rv64uc) echo rv64gc_zicsr_zifencei ;;
    *) echo rv64g_zba_zbb_zbs_zicsr_zifencei ;;
  esac
}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-riscv-tests.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$OUT"' EXIT

ENV=$SRC/env
MAC=$SRC/isa/macros/scalar
COMMON=(-mabi=lp64d -static -mcmodel=medany -fvisibility=hidden
        -nostdlib -nostartfiles -fno-pic -fno-pie -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments)

# The v environment's C code needs memcpy/memset/memcmp; upstream links -lc
# from a bare-metal toolchain.  Provide tiny local versions instead so a
# Linux cross compiler works too.
cat > "$OUT/vlib.c" <<'CEOF'
/* Keep GCC from turning these loops back into calls to themselves. */
#pragma GCC optimize ("no-tree-loop-distribute-patterns")
#include <stddef.h>
#include <stdint.h>
void* memcpy(void* d, const void* s, size_t n) { char* a = d; const char* b = s; while (n--) *a++ = *b++; return d; }
void* memset(void* d, int c, size_t n) { char* a = d; while (n--) *a++ = (char)c; return d; }
int memcmp(const void* x, const void* y, size_t n) { const unsigned char *a = x, *b = y; for (; n; n--, a++, b++) if (*a != *b) return *a - *b; return 0; }
__attribute__((weak)) int pf_filter(uintptr_t a, uintptr_t* p, int* c) { (void)a; (void)p; (void)c; return 0; }
__attribute__((weak)) int trap_filter(void* tf) { (void)tf; return 0; }
CEOF

tests_of() {  # suite -> test names from its Makefrag (rv64X_sc_tests)
  local frag=$SRC/isa/$1/Makefrag
  if [ -f "$frag" ]; then
    awk -v v="$1_sc_tests" '
      $0 ~ "^"v"[ \t]*[:+]?=" { on=1; sub(/^[^=]*=/, "") }
      on { line=$0; cont = (line ~ /\\[ \t]*$/); gsub(/\\/, "", line); printf "%s ", line; if (!cont) on=0 }' "$frag"
  else
    (cd "$SRC/isa/$1" && ls *.S 2>/dev/null | sed 's/\.S$//')
  fi
}
has_v() { grep -q "$1_v_tests" "$SRC/isa/$1/Makefrag" 2>/dev/null; }

build() {  # suite test env -> prints path or empty
  local s=$1 t=$2 e=$3 exe="$OUT/$1-$3-$2"
  local m="-march=$(march_of "$s")"
  if [ "$e" = p ]; then
    $CC "${COMMON[@]}" "$m" -I"$ENV/p" -I"$MAC" -T"$ENV/p/link.ld" \
        "$SRC/isa/$s/$t.S" -o "$exe" >"$exe.log" 2>&1 || return 1
  else
    $CC "${COMMON[@]}" "$m" -DENTROPY=0x$(printf '%x' $((RANDOM * 32768 + RANDOM))) \
        -std=gnu99 -O2 -I"$ENV/v" -I"$MAC" -T"$ENV/v/link.ld" \
        "$ENV/v/entry.S" "$ENV/v/vm.c" "$OUT/vlib.c" "$SRC/isa/$s/$t.S" \
        -o "$exe" >"$exe.log" 2>&1 || return 1
  fi
  echo "$exe"
}

run_one() {  # suite test env
  local name="$1-$3-$2" exe
  if ! exe=$(build "$1" "$2" "$3"); then
    echo "FAIL  $name  (build error: $(head -1 "$OUT/$name.log"))"; return
  fi
  timeout 120 "$NIMBUS" run --bare "$exe" --max-insns "$MAX_INSNS" >"$OUT/$name.out" 2>&1
  local rc=$?
  if [ $rc = 0 ]; then echo "PASS  $name"
  elif [ $rc = 124 ]; then echo "FAIL  $name  (timeout / instruction limit)"
  else echo "FAIL  $name  (exit $rc = failing TESTNUM, or environment code)"; fi
}
export -f run_one build march_of
export SRC OUT CC ENV MAC NIMBUS MAX_INSNS ISA
export COMMON_STR="${COMMON[*]}"

LIST=$OUT/list
: > "$LIST"
for s in $SUITES; do
  [ -d "$SRC/isa/$s" ] || { echo "note: no suite $s in $SRC/isa" >&2; continue; }
  for t in $(tests_of "$s"); do
    case " $SKIP " in *" $t "*) echo "SKIP  $s-$t" >&2; continue;; esac
    [ -f "$SRC/isa/$s/$t.S" ] || { echo "note: $s/$t.S missing" >&2; continue; }
    echo "$s $t p" >> "$LIST"
    if has_v "$s"; then echo "$s $t v" >> "$LIST"; fi
  done
done

# bash arrays do not cross export; rebuild COMMON inside the workers.
RESULTS=$OUT/results
xargs -P "$JOBS" -L 1 bash -c 'COMMON=($COMMON_STR); run_one "$0" "$1" "$2"' < "$LIST" | tee "$RESULTS"
pass=$(grep -c '^PASS' "$RESULTS")
fail=$(grep -c '^FAIL' "$RESULTS")
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
