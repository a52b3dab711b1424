#!/bin/sh
# The whole benchmark suite, Nimbus vs qemu-system-riscv64 (TCG) measured in the same run
# on the same kernel and images:
#
#   bench/run-all.sh [--only NAME,...] [--skip NAME,...] [--note TEXT] [--no-record] [BUILD_DIR]
#
# BUILD_DIR (default: build) must hold the nimbus binary (BUILD_DIR/nimbus; NIMBUS=path
# overrides it) and bench/programs/mips.elf and server-*.elf (target bench_programs; built
# here if missing).
# Runs each benchmark below in turn (a failing one is reported and the rest still run),
# prints every result with its ratio nimbus/qemu and, at the end, a summary table, and
# appends that table with the date, the machine and the full output to bench/RESULTS.md
# (unless --no-record). --note adds a line to the entry (e.g. "machine shared, noisy").
#
# Benchmarks (NAME: script):
#   boot   boot_time.py     process start to "nimbus-guest: ready", 1 and 4 harts
#   guest  guest_bench.py   integer, branchy, memory-bound and floating-point programs
#                           inside the booted Linux guest (time and guest MIPS)
#   mips   run-mips.sh      bare-metal integer benchmark (bench/programs/mips.c)
#   server server_bench.sh  bare-metal server-like kernels (bench/programs/server.c): hash,
#                           sort, JSON parsing, a bytecode VM, double matmul (guest MIPS)
#   io     io_bench.py      virtio-blk and virtio-net throughput in the guest
#   restore restore_time.py snapshot restore into a fresh process, request to running guest
#   host   host_bench.py    under nimbusd: launch to ready, per-VM memory overhead, idle CPU,
#                           idle 128 MiB VMs per 24 GiB host (needs root for cgroups)
#   cloud  cloud_bench.py   the control plane (nimbus-cloud): RunInstances to running for 1
#                           and 10 instances vs the same VMs made directly on one nimbusd;
#                           DescribeInstances p50/p99 with 1,000 instances in the store; its
#                           memory and store size (root; Debian's /usr/bin/python3 + boto3)
#   inside inside_bench.py  an instance with a key and user data: RunInstances to running, to
#                           ssh, to the user data's page, vs QEMU's bare boot of the same disk;
#                           metadata request latency from inside the guest (root; boto3; ssh)
#   store  store_bench.py   the control plane's store, etcd (3 members) vs SQLite: RunInstances
#                           latency p50/p99 and throughput, DescribeInstances latency (fake hosts,
#                           no VM; Debian's etcd-server; boto3)
#   failover failover_bench.py two nimbus-cloud replicas on a three-member etcd: the leader
#                           killed -9 until the other leads; a nimbusd killed -9 until the
#                           host is down (its liveness lease); 5 rounds each (root; no VM)
#   network network_bench.py the private network: ping latency and wget throughput between
#                           two instances on two hosts (UDP tunnel; hosts in namespaces) vs
#                           two on one host (its switch) (root; boto3)
#   migrate migrate_bench.py live migration of a 256 MiB, 1-vCPU guest to a fresh process on
#                           this host (TCP), idle, paced (~10 MiB/s rewritten) and busy (a
#                           64 MiB rewrite loop): downtime, total time, pages and bytes sent
#   simulate simulate_bench.py the data-center simulation on the shipped scenarios, one core:
#                           wall time, peak memory, hosts and energy of pack, pack+migrate
#                           vs spread or one server per application (no peer simulator)
#
# Adding one: write a script that prints its figures and, when $NIMBUS_BENCH_RESULTS names
# a file, appends one row per figure to it:
#   name<TAB>nimbus value<TAB>qemu value<TAB>unit<TAB>ratio nimbus/qemu
# then add a bench_NAME function below and NAME to BENCHMARKS. See bench/README.md.
# Environment: QEMU=path (default qemu-system-riscv64), BOOT_REPEATS (3), GUEST_REPEATS (2),
# MIPS_REPEATS (3), SERVER_REPEATS (3), IO_MIB (64), CLOUD_REPEATS (3),
# CLOUD_PYTHON (/usr/bin/python3), MIGRATE_REPEATS (5).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

BENCHMARKS="boot guest mips server io restore host cloud inside store failover network migrate simulate"

only="" skip="" note="" record=1 build=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=$(echo "$2" | tr ',' ' '); shift ;;
    --skip) skip=$(echo "$2" | tr ',' ' '); shift ;;
    --note) note=$2; shift ;;
    --no-record) record=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "run-all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
build=${build:-$root/build}
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run-all.sh: no build directory ${1:-build}" >&2; exit 2; }
nimbus=${NIMBUS:-}
if [ -z "$nimbus" ]; then
  for c in "$build/nimbus" "$build/src/cli/nimbus" "$build/bin/nimbus"; do
    [ -x "$c" ] && { nimbus=$c; break; }
  done
fi
[ -n "$nimbus" ] && [ -x "$nimbus" ] || { echo "run-all.sh: nimbus binary not found in $build" >&2; exit 2; }
qemu=${QEMU:-qemu-system-riscv64}
command -v "$qemu" >/dev/null 2>&1 || { echo "run-all.sh: $qemu not found (apt-get install qemu-system-misc)" >&2; exit 2; }

# --- the benchmarks ------------------------------------------------------------------
bench_boot()  { python3 "$here/boot_time.py" --nimbus "$nimbus" --qemu "$qemu" --repeats "${BOOT_REPEATS:-3}" --cpus 1 4; }
bench_restore() { python3 "$here/restore_time.py" --nimbus "$nimbus" --qemu "$qemu" --repeats "${RESTORE_REPEATS:-3}"; }
bench_guest() { python3 "$here/guest_bench.py" --nimbus "$nimbus" --qemu "$qemu" --repeats "${GUEST_REPEATS:-2}"; }
bench_mips() {
  if [ ! -f "$build/bench/programs/mips.elf" ]; then
    cmake --build "$build" --target bench_programs >/dev/null || return 1
  fi
  NIMBUS="$nimbus" QEMU="$qemu" sh "$here/run-mips.sh" "$build" "${MIPS_REPEATS:-3}"
}
bench_server() {
  if [ ! -f "$build/bench/programs/server-matmul.elf" ]; then
    cmake --build "$build" --target bench_programs >/dev/null || return 1
  fi
  NIMBUS="$nimbus" QEMU="$qemu" sh "$here/server_bench.sh" "$build" "${SERVER_REPEATS:-3}"
}
bench_host()  { python3 "$here/host_bench.py" --nimbus "$nimbus" --qemu "$qemu" --repeats "${HOST_REPEATS:-3}" --density "${HOST_DENSITY:-8}"; }
# Debian's python3: its boto3 (python3-boto3) signs the EC2 calls; another python3 may lack it.
bench_cloud() { "${CLOUD_PYTHON:-/usr/bin/python3}" "$here/cloud_bench.py" --build "$build" --repeats "${CLOUD_REPEATS:-3}"; }
bench_inside() { "${CLOUD_PYTHON:-/usr/bin/python3}" "$here/inside_bench.py" --build "$build" --qemu "$qemu" --repeats "${CLOUD_REPEATS:-3}"; }
bench_store() { "${CLOUD_PYTHON:-/usr/bin/python3}" "$here/store_bench.py" --build "$build"; }
bench_failover() { "${CLOUD_PYTHON:-/usr/bin/python3}" "$here/failover_bench.py" --build "$build"; }
bench_network() { "${CLOUD_PYTHON:-/usr/bin/python3}" "$here/network_bench.py" --build "$build" --repeats "${CLOUD_REPEATS:-3}"; }
bench_simulate() { python3 "$here/simulate_bench.py" --nimbus "$nimbus"; }
bench_migrate() { python3 "$here/migrate_bench.py" --nimbus "$nimbus" --qemu "$qemu" --repeats "${MIGRATE_REPEATS:-5}"; }
bench_io()    { python3 "$here/io_bench.py" --nimbus "$nimbus" --qemu "$qemu" --mib "${IO_MIB:-64}"; }
# --------------------------------------------------------------------------------------

selected=""
for b in $BENCHMARKS; do
  if [ -n "$only" ] && ! echo " $only " | grep -q " $b "; then continue; fi
  if echo " $skip " | grep -q " $b "; then continue; fi
  selected="$selected $b"
done
[ -n "$selected" ] || { echo "run-all.sh: nothing selected (benchmarks: $BENCHMARKS)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
export NIMBUS_BENCH_RESULTS="$tmp/rows.tsv"
: > "$NIMBUS_BENCH_RESULTS"

date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
machine="${cpu:-$(uname -m)}, $(nproc) cores, $(uname -s) $(uname -r)"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
qemu_version=$("$qemu" --version | head -n 1)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  rev="$rev (working tree modified)"
fi

echo "== Nimbus benchmark suite: $date_utc"
echo "   nimbus: $nimbus"
echo "   qemu:   $qemu_version"
echo "   host:   $machine; load average $load_start"
failed=""
t_all=$(date +%s)
for b in $selected; do
  echo "== $b"
  t0=$(date +%s)
  { "bench_$b" 2>&1; echo $? > "$tmp/$b.status"; } | tee "$tmp/$b.out"
  status=$(cat "$tmp/$b.status")
  rows_after=$(wc -l < "$NIMBUS_BENCH_RESULTS")
  if [ "$status" != 0 ] || [ "${rows_before:-0}" -eq "$rows_after" ]; then
    echo "== $b: FAILED (exit status $status, $((rows_after - ${rows_before:-0})) result rows)"
    failed="$failed $b"
  fi
  rows_before=$rows_after
  echo "== $b: $(( $(date +%s) - t0 )) s"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

table() {
  printf '| benchmark | Nimbus | QEMU | unit | Nimbus/QEMU |\n'
  printf '| --- | --- | --- | --- | --- |\n'
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$NIMBUS_BENCH_RESULTS"
}
echo
echo "== summary (ratio nimbus/qemu: for s lower is better, for MIPS and MB/s higher is better)"
table
[ -n "$failed" ] && echo "== FAILED:$failed"
echo "== total $(( $(date +%s) - t_all )) s"

if [ "$record" = 1 ]; then
  {
    echo
    echo "## $date_utc — \`bench/run-all.sh\`$( [ -n "$only$skip" ] && printf ' (%s)' "$selected" )"
    echo
    echo "Host: $machine; load average $load_start at the start, $load_end at the end."
    echo "$qemu_version; Nimbus \`$nimbus\` built from $rev."
    [ -n "$note" ] && { echo; echo "$note"; }
    echo
    echo "Ratios are Nimbus/QEMU of the figure in that row: below 1 is better for Nimbus for"
    echo "times (s), above 1 for rates (MIPS, MB/s)."
    echo
    table
    [ -n "$failed" ] && { echo; echo "Failed:$failed"; }
    echo
    echo "<details><summary>output</summary>"
    echo
    echo '```'
    for b in $selected; do echo "== $b"; cat "$tmp/$b.out"; done
    echo '```'
    echo
    echo "</details>"
  } >> "$here/RESULTS.md"
  echo "== appended to $here/RESULTS.md"
fi
[ -z "$failed" ]
