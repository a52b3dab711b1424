#!/usr/bin/env bash
# Disk image locking against QEMU's own (issue 23, defect 3): an image Nimbus writes is
# refused by qemu-img/qemu-io and by a second Nimbus, an image QEMU writes is refused by
# Nimbus, readers share, and kill -9 of the holder frees the image.
# Usage: locking.sh NIMBUS DISK_IO WORKDIR
set -euo pipefail
NIMBUS=$1 IO=$2 W=$3
rm -rf "$W" && mkdir -p "$W" && cd "$W"

step() { echo "--- $*"; }
die() { echo "FAIL: $*"; exit 1; }
holder=
trap '[[ -z $holder ]] || kill -9 $holder 2>/dev/null || true' EXIT

# expect_fail PATTERN CMD...: CMD fails and its output contains PATTERN.
expect_fail() {
  local pattern=$1 out
  shift
  if out=$("$@" 2>&1); then die "succeeded: $*"; fi
  grep -qF -- "$pattern" <<<"$out" || die "$*: expected '$pattern' in: $out"
}
# hold FILE rw|ro: disk_io opens FILE in the background and keeps it open.
hold() {
  "$IO" "$1" hold "$2" >hold.out 2>&1 &
  holder=$!
  for _ in $(seq 200); do
    grep -q held hold.out && return 0
    kill -0 $holder 2>/dev/null || break
    sleep 0.05
  done
  cat hold.out
  die "disk_io could not hold $1"
}
release() {
  kill -9 $holder
  wait $holder 2>/dev/null || true
  holder=
}
# until_locked FILE: waits until some process holds FILE for writing: an OFD lock on
# byte 101 of its inode in /proc/locks (qemu-img info would not see a raw image's writer).
until_locked() {
  local ino
  ino=$(stat -c %i "$1")
  for _ in $(seq 400); do
    awk -v ino="$ino" '$2 == "OFDLCK" { split($6, id, ":"); if (id[3] == ino && $7 <= 101 && $8 >= 101) found = 1 }
                       END { exit !found }' /proc/locks && return 0
    sleep 0.05
  done
  die "nobody took the write lock of $1"
}

for fmt in qcow2 raw; do
  img=disk.$fmt
  qemu-img create -q -f $fmt $img 16M

  step "$fmt: Nimbus writes it: QEMU and a second Nimbus are refused"
  hold $img rw
  # (qemu-img info shares writes to raw images, which have no metadata to go stale.)
  if [[ $fmt == qcow2 ]]; then expect_fail 'Failed to get shared "write" lock' qemu-img info $img; fi
  expect_fail 'Failed to get "write" lock' qemu-io -f $fmt -c 'write 0 4k' $img
  expect_fail "disk image '$img' is in use by another process (locked for writing)" "$IO" $img write 1 0 4K
  expect_fail "in use by another process (locked for writing)" "$IO" $img read 0 0 4K
  expect_fail "in use by another process (locked for writing)" "$NIMBUS" image info $img
  qemu-img info -U $img >/dev/null  # forced sharing is still allowed

  step "$fmt: kill -9 of the holder frees the image"
  release
  qemu-img info $img >/dev/null
  "$IO" $img write 0x11 0 4K

  step "$fmt: Nimbus reads it: readers share, writers are refused"
  hold $img ro
  "$IO" $img read 0x11 0 4K
  qemu-img info $img >/dev/null
  qemu-io -r -f $fmt -c 'read -P 0x11 0 4k' $img | grep -q "read 4096/4096"
  expect_fail 'Failed to get "write" lock' qemu-io -f $fmt -c 'write 0 4k' $img
  expect_fail "in use by another process (locked for reading)" "$IO" $img write 1 0 4K
  release

  step "$fmt: QEMU writes it: Nimbus is refused"
  qemu-io -f $fmt -c 'sleep 20000' $img >/dev/null 2>&1 &
  qemu=$!
  until_locked $img
  expect_fail "in use by another process (locked for writing)" "$IO" $img read 0x11 0 4K
  expect_fail "in use by another process (locked for writing)" "$IO" $img write 1 0 4K
  kill $qemu
  wait $qemu 2>/dev/null || true
  "$IO" $img read 0x11 0 4K
  if [[ $fmt == qcow2 ]]; then qemu-img check -q $img; fi
done

step "nimbus run --disk: the VMM holds its disk; a second VMM on it fails at once"
qemu-img create -q -f qcow2 vm.qcow2 64M
"$NIMBUS" run --disk vm.qcow2 >run.out 2>&1 &
holder=$!
until_locked vm.qcow2
expect_fail 'Failed to get shared "write" lock' qemu-img info vm.qcow2
expect_fail "disk image 'vm.qcow2' is in use by another process (locked for writing)" \
  timeout 60 "$NIMBUS" run --disk vm.qcow2
release
qemu-img info vm.qcow2 >/dev/null
qemu-img check -q vm.qcow2
echo "PASS"
