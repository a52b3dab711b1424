#!/bin/sh
# "Server-like" bare-metal CPU kernels, Nimbus vs QEMU (bench/programs/server.c).
#   bench/server_bench.sh BUILD_DIR [REPEATS]
# Builds nothing: expects BUILD_DIR/nimbus (or BUILD_DIR/src/cli/nimbus) and
# BUILD_DIR/bench/programs/server-{hash,sort,json,interp,matmul}.elf (target bench_programs).
# Runs each ELF under
#   nimbus run --stats --bare ELF      (prints "instructions: N" / "seconds: S" on stderr)
#   qemu-system-riscv64 -M virt -bios none -kernel ELF -nographic
# takes the best wall-clock time of REPEATS runs (default 1) for each, and prints per
# kernel: the retired instructions (Nimbus's count; the programs are deterministic, so
# QEMU runs the same ones), both wall times, the guest MIPS of each (that count / its
# time) and the speed ratio QEMU time / Nimbus time (above 1: Nimbus is faster).
# Every run must end through the test finisher with 0x5555 (exit status 0): a wrong
# checksum or a failed consistency check is a failure of the benchmark.
# Environment: NIMBUS=path overrides the binary, QEMU=path the emulator, NO_QEMU=1 skips it;
# KERNELS="hash sort ..." runs a subset; if NIMBUS_BENCH_RESULTS names a file, one row
# per kernel `name<TAB>nimbus MIPS<TAB>qemu MIPS<TAB>MIPS<TAB>ratio` is appended to it
# (bench/run-all.sh collects them; without QEMU its columns are "-").
set -eu
build=${1:?usage: server_bench.sh BUILD_DIR [REPEATS]}
reps=${2:-1}
kernels=${KERNELS:-hash sort json interp matmul}
progs=$build/bench/programs
for k in $kernels; do
  [ -f "$progs/server-$k.elf" ] || { echo "server_bench.sh: $progs/server-$k.elf not found (build target bench_programs)" >&2; exit 2; }
done
nimbus=${NIMBUS:-}
if [ -z "$nimbus" ]; then
  for c in "$build/nimbus" "$build/src/cli/nimbus" "$build/bin/nimbus"; do
    [ -x "$c" ] && { nimbus=$c; break; }
  done
fi
[ -n "$nimbus" ] && [ -x "$nimbus" ] || { echo "server_bench.sh: nimbus binary not found in $build" >&2; exit 2; }
qemu=${QEMU:-qemu-system-riscv64}
use_qemu=1
if [ "${NO_QEMU:-0}" = 1 ] || ! command -v "$qemu" >/dev/null 2>&1; then use_qemu=0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }          # floating-point arithmetic without bc
is_less() { [ "$(calc "($1 < $2) ? 1 : 0")" = 1 ]; }

# nimbus_best ELF: sets best_n (wall s) and insns (from the fastest run)
nimbus_best() {
  best_n="" insns=""
  i=0
  while [ $i -lt "$reps" ]; do
    t0=$(now)
    st=0
    "$nimbus" run --stats --bare "$1" >"$tmp/n.out" 2>"$tmp/n.err" || st=$?
    t1=$(now)
    if [ "$st" != 0 ]; then
      echo "server_bench.sh: nimbus failed on $1 (exit $st; 1 = wrong checksum, 2 = trap, 3 = check failed):" >&2
      cat "$tmp/n.err" >&2
      return 1
    fi
    w=$(calc "$t1 - $t0")
    if [ -z "$best_n" ] || is_less "$w" "$best_n"; then
      best_n=$w
      insns=$(sed -n 's/^[[:space:]]*instructions:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$tmp/n.err" | tail -n 1)
    fi
    i=$((i + 1))
  done
  [ -n "$insns" ] || { echo "server_bench.sh: no 'instructions: N' line in nimbus --stats output" >&2; return 1; }
}

# qemu_best ELF: sets best_q (wall s)
qemu_best() {
  best_q=""
  i=0
  while [ $i -lt "$reps" ]; do
    t0=$(now)
    st=0
    timeout 300 "$qemu" -M virt -bios none -kernel "$1" -nographic \
      -monitor none -serial none </dev/null >/dev/null 2>"$tmp/q.err" || st=$?
    t1=$(now)
    if [ "$st" != 0 ]; then
      echo "server_bench.sh: qemu failed on $1 (exit $st):" >&2
      cat "$tmp/q.err" >&2
      return 1
    fi
    w=$(calc "$t1 - $t0")
    if [ -z "$best_q" ] || is_less "$w" "$best_q"; then best_q=$w; fi
    i=$((i + 1))
  done
}

echo "server kernels, best of $reps; MIPS = Nimbus's instruction count / each emulator's wall time;"
echo "speed = QEMU time / Nimbus time (above 1: Nimbus faster)"
printf '%-8s %14s %10s %10s %10s %10s %7s\n' kernel instructions nimbus_s qemu_s nimbus_MIPS qemu_MIPS speed
failed=""
logsum=0 nlog=0
for k in $kernels; do
  elf=$progs/server-$k.elf
  if ! nimbus_best "$elf"; then failed="$failed $k"; continue; fi
  mips_n=$(calc "$insns / $best_n / 1000000")
  if [ "$use_qemu" = 1 ]; then
    if ! qemu_best "$elf"; then failed="$failed $k"; continue; fi
    mips_q=$(calc "$insns / $best_q / 1000000")
    speed=$(calc "$best_q / $best_n")
    logsum=$(calc "$logsum + log($speed)") nlog=$((nlog + 1))
    printf '%-8s %14s %10.3f %10.3f %10.1f %10.1f %7.2f\n' \
      "$k" "$insns" "$best_n" "$best_q" "$mips_n" "$mips_q" "$speed"
  else
    printf '%-8s %14s %10.3f %10s %10.1f %10s %7s\n' "$k" "$insns" "$best_n" - "$mips_n" - -
  fi
  if [ -n "${NIMBUS_BENCH_RESULTS:-}" ]; then
    if [ "$use_qemu" = 1 ]; then
      printf 'bare-metal server %s (server-%s.elf, %s instr.), best of %s: guest MIPS\t%.0f\t%.0f\tMIPS\t%.2f\n' \
        "$k" "$k" "$insns" "$reps" "$mips_n" "$mips_q" "$(calc "$mips_n / $mips_q")"
    else
      printf 'bare-metal server %s (server-%s.elf, %s instr.), best of %s: guest MIPS\t%.0f\t-\tMIPS\t-\n' \
        "$k" "$k" "$insns" "$reps" "$mips_n"
    fi >> "$NIMBUS_BENCH_RESULTS"
  fi
done
[ "$use_qemu" = 1 ] || echo "qemu:    skipped"
[ "$nlog" -gt 0 ] && printf 'geometric mean speed (QEMU time / Nimbus time) over %d kernels: %.2f\n' \
  "$nlog" "$(calc "exp($logsum / $nlog)")"
if [ -n "$failed" ]; then
  echo "server_bench.sh: FAILED:$failed" >&2
  exit 1
fi
exit 0
