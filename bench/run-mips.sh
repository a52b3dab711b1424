#!/bin/sh
# Integer throughput of Nimbus vs QEMU on bench/programs/mips.c.
#   bench/run-mips.sh BUILD_DIR [REPEATS]
# Builds nothing: expects BUILD_DIR/nimbus (or BUILD_DIR/src/cli/nimbus) and
# BUILD_DIR/bench/programs/mips.elf. Runs the same ELF under
#   nimbus run --stats --bare mips.elf      (prints "instructions: N" / "seconds: S" on stderr)
#   qemu-system-riscv64 -M virt -bios none -kernel mips.elf -nographic
# takes the best wall-clock time of REPEATS runs (default 1) for each, and prints the
# guest MIPS of Nimbus (from its instruction count) and the time ratio nimbus / QEMU.
# Environment: NIMBUS=path overrides the binary, QEMU=path the emulator, NO_QEMU=1 skips it;
# if NIMBUS_BENCH_RESULTS names a file, rows `name<TAB>nimbus<TAB>qemu<TAB>unit<TAB>ratio` are
# appended to it (bench/run-all.sh collects them).
set -eu
build=${1:?usage: run-mips.sh BUILD_DIR [REPEATS]}
reps=${2:-1}
elf=$build/bench/programs/mips.elf
[ -f "$elf" ] || { echo "run-mips.sh: $elf not found (build target bench_programs)" >&2; exit 2; }
nimbus=${NIMBUS:-}
if [ -z "$nimbus" ]; then
  for c in "$build/nimbus" "$build/src/cli/nimbus" "$build/bin/nimbus"; do
    [ -x "$c" ] && { nimbus=$c; break; }
  done
fi
[ -n "$nimbus" ] && [ -x "$nimbus" ] || { echo "run-mips.sh: nimbus binary not found in $build" >&2; exit 2; }
qemu=${QEMU:-qemu-system-riscv64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }          # floating-point arithmetic without bc

best_n=""   # best nimbus wall time
insns=""
nsecs=""
i=0
while [ $i -lt "$reps" ]; do
  t0=$(now)
  if ! "$nimbus" run --stats --bare "$elf" >"$tmp/n.out" 2>"$tmp/n.err"; then
    echo "run-mips.sh: nimbus failed (exit $?):" >&2; cat "$tmp/n.err" >&2; exit 1
  fi
  t1=$(now)
  w=$(calc "$t1 - $t0")
  if [ -z "$best_n" ] || [ "$(calc "($w < $best_n) ? 1 : 0")" = 1 ]; then
    best_n=$w
    insns=$(sed -n 's/^[[:space:]]*instructions:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$tmp/n.err" | tail -n 1)
    nsecs=$(sed -n 's/^[[:space:]]*seconds:[[:space:]]*\([0-9.eE+-][0-9.eE+-]*\).*/\1/p' "$tmp/n.err" | tail -n 1)
  fi
  i=$((i + 1))
done

printf 'nimbus:  wall %.3f s' "$best_n"
[ -n "$nsecs" ] && printf ', reported %.3f s' "$nsecs"
printf '\n'
if [ -n "$insns" ]; then
  printf 'nimbus:  %s instructions, %.1f MIPS (wall)' "$insns" "$(calc "$insns / $best_n / 1000000")"
  [ -n "$nsecs" ] && printf ', %.1f MIPS (reported time)' "$(calc "$insns / $nsecs / 1000000")"
  printf '\n'
else
  echo "nimbus:  no 'instructions: N' line in --stats output" >&2
fi

if [ "${NO_QEMU:-0}" = 1 ] || ! command -v "$qemu" >/dev/null 2>&1; then
  echo "qemu:    skipped"
  exit 0
fi
best_q=""
i=0
while [ $i -lt "$reps" ]; do
  t0=$(now)
  if ! timeout 300 "$qemu" -M virt -bios none -kernel "$elf" -nographic \
        -monitor none -serial none </dev/null >/dev/null 2>"$tmp/q.err"; then
    echo "run-mips.sh: qemu failed:" >&2; cat "$tmp/q.err" >&2; exit 1
  fi
  t1=$(now)
  w=$(calc "$t1 - $t0")
  if [ -z "$best_q" ] || [ "$(calc "($w < $best_q) ? 1 : 0")" = 1 ]; then best_q=$w; fi
  i=$((i + 1))
done
printf 'qemu:    wall %.3f s' "$best_q"
[ -n "$insns" ] && printf ', %.1f MIPS' "$(calc "$insns / $best_q / 1000000")"
printf '\n'
printf 'ratio:   nimbus/qemu time = %.3f\n' "$(calc "$best_n / $best_q")"
if [ -n "${NIMBUS_BENCH_RESULTS:-}" ]; then
  {
    printf 'bare-metal integer (mips.elf), best of %s: time\t%.3f\t%.3f\ts\t%.2f\n' \
      "$reps" "$best_n" "$best_q" "$(calc "$best_n / $best_q")"
    if [ -n "$insns" ]; then
      printf 'bare-metal integer (mips.elf): guest MIPS (%s instr.)\t%.0f\t%.0f\tMIPS\t%.2f\n' \
        "$insns" "$(calc "$insns / $best_n / 1000000")" "$(calc "$insns / $best_q / 1000000")" "$(calc "$best_q / $best_n")"
    fi
  } >> "$NIMBUS_BENCH_RESULTS"
fi
