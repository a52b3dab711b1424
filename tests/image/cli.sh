#!/usr/bin/env bash
# `nimbus image`: create/info/convert/resize, and bad input gives one clear line, exit
# status 2 and no partial output file.
# Usage: cli.sh NIMBUS DISK_IO WORKDIR
set -euo pipefail
NIMBUS=$1 IO=$2 W=$3
rm -rf "$W" && mkdir -p "$W" && cd "$W"

# expect_fail PATTERN -- ARGS...: exit status 2 and PATTERN in the single stderr line.
expect_fail() {
  local pattern=$1; shift 2
  local status=0
  "$NIMBUS" "$@" 2>err.txt >/dev/null || status=$?
  if [ $status -ne 2 ] || ! grep -q -- "$pattern" err.txt; then
    echo "FAIL: nimbus $* -> status $status, stderr: $(cat err.txt)"; exit 1
  fi
  if [ "$(grep -c . err.txt)" -gt 2 ]; then echo "FAIL: nimbus $*: more than one line"; cat err.txt; exit 1; fi
}

echo "--- create and info"
"$NIMBUS" image create -f raw disk.raw 10M
test "$(stat -c %s disk.raw)" -eq 10485760
"$NIMBUS" image create disk.qcow2 1G
"$NIMBUS" image info disk.qcow2 | grep -q "file format: qcow2"
"$NIMBUS" image info disk.qcow2 | grep -q "virtual size: 1 GiB (1073741824 bytes)"
"$NIMBUS" image info disk.qcow2 | grep -q "cluster size: 65536"
"$NIMBUS" image info --json disk.qcow2 | grep -q '"virtual-size": 1073741824'
"$NIMBUS" image info disk.raw | grep -q "file format: raw"
qemu-img check -q disk.qcow2
"$NIMBUS" image create --cluster-size 4K -b disk.qcow2 -F qcow2 over.qcow2
"$NIMBUS" image info over.qcow2 | grep -q "backing file: disk.qcow2"
"$NIMBUS" image info over.qcow2 | grep -q "cluster size: 4096"
qemu-img info --output=json over.qcow2 | grep -q '"virtual-size": 1073741824'
qemu-img check -q over.qcow2

echo "--- convert keeps the output sparse"
"$IO" disk.raw write 0x3c 5M 8K
"$NIMBUS" image convert -O qcow2 disk.raw sparse.qcow2
qemu-img compare -q disk.raw sparse.qcow2
test "$(stat -c %s sparse.qcow2)" -lt 1048576
"$NIMBUS" image convert -f qcow2 -O raw sparse.qcow2 sparse.raw
cmp disk.raw sparse.raw
test "$(du -k sparse.raw | cut -f1)" -lt 1024

echo "--- resize"
"$NIMBUS" image resize disk.raw 20M
test "$(stat -c %s disk.raw)" -eq 20971520
"$NIMBUS" image resize disk.qcow2 +1G
qemu-img info disk.qcow2 | grep -q "virtual size: 2 GiB"
qemu-img check -q disk.qcow2
expect_fail "shrinking is not supported" -- image resize disk.raw 1M
expect_fail "shrinking is not supported" -- image resize disk.qcow2 1M

echo "--- bad input"
expect_fail "size" -- image create x.qcow2 lots
test ! -e x.qcow2
expect_fail "a size is needed" -- image create y.qcow2
expect_fail "unknown image format" -- image create -f vmdk z.img 1M
test ! -e z.img
expect_fail "No such file" -- image create -b missing.qcow2 w.qcow2
test ! -e w.qcow2
expect_fail "No such file" -- image info missing.qcow2
expect_fail "unknown image format" -- image convert -O vdi disk.raw out.img
test ! -e out.img && test ! -e out.img.tmp
printf 'QFI\xfb\0\0\0\1' > v1.qcow2 && truncate -s 4096 v1.qcow2
expect_fail "unsupported version 1" -- image info v1.qcow2
expect_fail "unsupported version 1" -- image convert -O raw v1.qcow2 out.raw
test ! -e out.raw && test ! -e out.raw.tmp
# A qcow2 whose L1 entry points far past the end of the file: an I/O error mid-convert.
"$NIMBUS" image create bad.qcow2 1M
printf '\x00\x00\x00\x10\x00\x00\x00\x00' | dd of=bad.qcow2 bs=1 seek=$((3 * 65536)) conv=notrunc status=none
expect_fail "outside the file" -- image convert -O raw bad.qcow2 out.raw
test ! -e out.raw && test ! -e out.raw.tmp
expect_fail "same file" -- image convert -O raw disk.raw disk.raw
expect_fail "" -- image
echo "PASS"
