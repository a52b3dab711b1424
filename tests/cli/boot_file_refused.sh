#!/usr/bin/env bash
# boot_file_refused.sh CASE NIMBUS IMAGES
# `nimbus run` with a boot file it must refuse before reading it: exit status 2 within a
# few seconds (not the minutes and gigabytes of reading /dev/zero, nor a hang on a FIFO
# with no writer, nor a guest sitting silent on a truncated kernel), with one line on
# stderr naming the file and the problem.
set -u
case_name=$1; nimbus=$2; images=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/fifo"
head -c 100 "$images/Image" > "$work/Image.cut"
case $case_name in
  kernel_dev_zero) args=(--kernel /dev/zero); want="kernel '/dev/zero' is a character device" ;;
  initrd_dev_zero) args=(--initrd /dev/zero); want="initrd '/dev/zero' is a character device" ;;
  firmware_dev_zero) args=(--firmware /dev/zero); want="firmware '/dev/zero' is a character device" ;;
  kernel_fifo) args=(--kernel "$work/fifo"); want="kernel '.*/fifo' is a FIFO or pipe" ;;
  initrd_fifo) args=(--kernel "$images/Image" --initrd "$work/fifo"); want="initrd '.*/fifo' is a FIFO or pipe" ;;
  kernel_truncated) args=(--kernel "$work/Image.cut"); want="kernel '.*/Image.cut' is truncated" ;;
  initrd_larger_than_ram)
    truncate -s 1T "$work/huge"
    args=(--kernel "$images/Image" --initrd "$work/huge" --memory 64M)
    want="initrd '.*/huge' \(1048576.0 MiB\) is larger than the VM's memory \(64.0 MiB\)" ;;
  *) echo "unknown case $case_name"; exit 1 ;;
esac
start=$(date +%s%N)
timeout -s KILL 10 "$nimbus" run "${args[@]}" </dev/null >"$work/out" 2>"$work/err"
status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
fail() { echo "FAIL ($case_name): $*"; head -c 2000 "$work/err"; exit 1; }
[ "$status" = 2 ] || fail "exit status $status after $ms ms, want 2"
[ "$ms" -lt 5000 ] || fail "took $ms ms"
[ "$(wc -l < "$work/err")" = 1 ] || fail "want one line on stderr"
[ ! -s "$work/out" ] || fail "unexpected output on stdout"
grep -Eq -- "^nimbus: $want" "$work/err" || fail "stderr does not match /$want/"
echo "ok ($case_name, $ms ms): $(cat "$work/err")"
