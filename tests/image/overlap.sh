#!/usr/bin/env bash
# A hostile qcow2 image whose L2 entry points at its own L1 table (issue 23, defect 7):
# Nimbus refuses to open it for writing, reads it, and after every attempted write or
# discard the file is byte for byte what it was and `qemu-img check` says what it said.
# Usage: overlap.sh NIMBUS DISK_IO WORKDIR
set -euo pipefail
NIMBUS=$1 IO=$2 W=$3
rm -rf "$W" && mkdir -p "$W" && cd "$W"

step() { echo "--- $*"; }
die() { echo "FAIL: $*"; exit 1; }
expect_fail() {
  local pattern=$1 out
  shift
  if out=$("$@" 2>&1); then die "succeeded: $*"; fi
  grep -qF -- "$pattern" <<<"$out" || die "$*: expected '$pattern' in: $out"
}
be64() { echo $((16#$(od -An -tx1 -j "$2" -N8 "$1" | tr -d ' \n'))); }
put_be64() {
  printf "$(printf '%016x' "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

step "build the image: qemu-img and qemu-io, then guest cluster 0 -> the L1 table"
qemu-img create -q -f qcow2 h.qcow2 16M
qemu-io -c 'write -P 0xaa 0 64k' -c 'write -P 0xbb 1M 64k' h.qcow2 >/dev/null
qemu-img check -q h.qcow2
l1=$(be64 h.qcow2 40)
l2=$(($(be64 h.qcow2 "$l1") & 0x00fffffffffffe00))
put_be64 h.qcow2 "$l2" $((l1 | (1 << 63)))
before=$(qemu-img check h.qcow2 2>&1 || true)
grep -q "ERROR" <<<"$before" || die "qemu-img check does not see the damage: $before"
cp h.qcow2 h.orig

step "read-write opens are refused with a clear message; reads work"
msg="guest offset 0 is mapped to host offset $l1, inside the L1 table; it can be opened read-only only"
expect_fail "$msg" "$IO" h.qcow2 write 0xee 0 64K
expect_fail "$msg" "$IO" h.qcow2 write 0xee 1M 4K
expect_fail "$msg" "$IO" h.qcow2 discard 0 64K
expect_fail "$msg" "$NIMBUS" image resize h.qcow2 32M
expect_fail "$msg" timeout 60 "$NIMBUS" run --disk h.qcow2
"$IO" h.qcow2 read 0xbb 1M 64K

step "no new damage"
cmp h.qcow2 h.orig
after=$(qemu-img check h.qcow2 2>&1 || true)
[[ $before == "$after" ]] || die "qemu-img check changed: before: $before; after: $after"
echo "PASS"
