#!/usr/bin/env bash
# Nimbus's qcow2 backend against QEMU's tools: images made and written by qemu-img/qemu-io
# are read and written by us, ours by them, and `qemu-img check` finds no error or leak.
# Usage: interop.sh NIMBUS DISK_IO WORKDIR
set -euo pipefail
NIMBUS=$1 IO=$2 W=$3
rm -rf "$W" && mkdir -p "$W" && cd "$W"

step() { echo "--- $*"; }
check() { qemu-img check -q "$1" || { echo "FAIL: qemu-img check $1"; qemu-img check "$1"; exit 1; }; }
# qemu_read IMG PATTERN OFFSET LEN: qemu-io verifies the bytes.
qemu_read() {
  local out
  out=$(qemu-io -r -c "read -P $2 $3 $4" "$1" 2>&1) || { echo "FAIL: qemu-io $1: $out"; exit 1; }
  if grep -q "Pattern verification failed" <<<"$out"; then echo "FAIL: qemu-io $1 $2 $3 $4: $out"; exit 1; fi
}
qemu_write() { qemu-io -c "write -P $2 $3 $4" "$1" >/dev/null; }

step "qemu writes, nimbus reads and writes, qemu reads"
qemu-img create -q -f qcow2 base.qcow2 16M
qemu_write base.qcow2 0xab 0 64k
qemu_write base.qcow2 0x11 1M 4k
"$IO" base.qcow2 read 0xab 0 64K
"$IO" base.qcow2 read 0x11 1M 4K
"$IO" base.qcow2 read 0 $((1048576 + 4096)) 60K
"$IO" base.qcow2 read 0 64K 960K
"$IO" base.qcow2 write 0xcd 2M 64K
"$IO" base.qcow2 write 0xee $((1048576 + 8192)) 512
"$IO" base.qcow2 write 0x77 $((3145728 + 100)) 1000
qemu_read base.qcow2 0xcd 2M 64k
qemu_read base.qcow2 0x11 1M 4k
qemu_read base.qcow2 0xee $((1048576 + 8192)) 512
qemu_read base.qcow2 0x77 $((3145728 + 100)) 1000
qemu_read base.qcow2 0 3M 100
qemu_read base.qcow2 0xab 0 64k
check base.qcow2

step "overlay made by qemu-img: copy-on-write leaves the base alone"
cp base.qcow2 base.orig
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
"$IO" overlay.qcow2 read 0xab 0 64K
"$IO" overlay.qcow2 write 0x55 0 4K
"$IO" overlay.qcow2 read 0x55 0 4K
"$IO" overlay.qcow2 read 0xab 4K 60K
qemu_read overlay.qcow2 0x55 0 4k
qemu_read overlay.qcow2 0xab 4k 60k
qemu_read overlay.qcow2 0xcd 2M 64k
check overlay.qcow2
cmp base.qcow2 base.orig
"$IO" base.qcow2 read 0xab 0 64K

step "overlay made by nimbus (backing format probed), relative backing path"
"$NIMBUS" image create -b base.qcow2 ours.qcow2
qemu-img info ours.qcow2 | grep -q "backing file: base.qcow2"
qemu-img info ours.qcow2 | grep -q "backing file format: qcow2"
check ours.qcow2
qemu-img compare -q base.qcow2 ours.qcow2
"$IO" ours.qcow2 write 0x66 $((2097152 + 512)) 512
qemu_read ours.qcow2 0xcd 2M 512
qemu_read ours.qcow2 0x66 $((2097152 + 512)) 512
qemu_read ours.qcow2 0xcd $((2097152 + 1024)) 63k
check ours.qcow2

step "convert: qcow2 chain to raw and raw to qcow2 match qemu-img"
"$NIMBUS" image convert -O raw overlay.qcow2 overlay.raw
qemu-img convert -O raw overlay.qcow2 overlay.qemu.raw
cmp overlay.raw overlay.qemu.raw
"$NIMBUS" image convert -O qcow2 overlay.raw back.qcow2
check back.qcow2
qemu-img compare -q overlay.raw back.qcow2
test ! -e back.qcow2.tmp

step "compressed clusters (read, then overwrite without leaks)"
qemu-img convert -q -c -O qcow2 base.qcow2 compressed.qcow2
qemu-img compare -q base.qcow2 compressed.qcow2
"$NIMBUS" image convert -O raw compressed.qcow2 compressed.raw
qemu-img compare -q -f raw -F qcow2 compressed.raw base.qcow2
"$IO" compressed.qcow2 write 0x99 100 10
qemu_read compressed.qcow2 0x99 100 10
qemu_read compressed.qcow2 0xab 110 1000
check compressed.qcow2

step "version 2 (compat=0.10) images"
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 8M
qemu_write v2.qcow2 0x21 512 1k
"$IO" v2.qcow2 read 0x21 512 1K
"$IO" v2.qcow2 write 0x22 4M 128K
qemu_read v2.qcow2 0x22 4M 128k
check v2.qcow2

step "zero clusters written by qemu read as zeros over a backing file"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 zero.qcow2
qemu-io -c "write -z 0 64k" zero.qcow2 >/dev/null
"$IO" zero.qcow2 read 0 0 64K
"$IO" zero.qcow2 write 0x31 512 512
"$IO" zero.qcow2 read 0 0 512
"$IO" zero.qcow2 read 0x31 512 512
qemu_read zero.qcow2 0 1024 63k
check zero.qcow2

step "512-byte clusters: many refcount blocks and L2 tables"
qemu-img create -q -f qcow2 -o cluster_size=512 small.qcow2 64M
"$IO" small.qcow2 write 0x42 1000 3M
qemu_read small.qcow2 0x42 1000 3M
check small.qcow2

step "resize"
# The L1 table of a 64M image with 512-byte clusters fills its clusters exactly: refused.
status=0; "$NIMBUS" image resize small.qcow2 +1M 2>resize.err || status=$?
test $status -eq 2 && grep -q "L1 table would have to move" resize.err
check small.qcow2
"$NIMBUS" image resize v2.qcow2 +1M
qemu-img info v2.qcow2 | grep -q "virtual size: 9 MiB"
check v2.qcow2
"$NIMBUS" image resize base.qcow2 1G
check base.qcow2
"$IO" base.qcow2 write 0x44 $((1073741824 - 65536)) 64K
qemu_read base.qcow2 0x44 $((1073741824 - 65536)) 64k
qemu_read base.qcow2 0xcd 2M 64k
check base.qcow2

step "a few hundred MiB into a 1G image from qemu-img"
qemu-img create -q -f qcow2 big.qcow2 1G
"$IO" big.qcow2 write 0x5a 0 256M
qemu_read big.qcow2 0x5a 255M 1M
qemu_read big.qcow2 0 256M 1M
check big.qcow2
"$IO" big.qcow2 discard 16M 32M
qemu_read big.qcow2 0 16M 32M
qemu_read big.qcow2 0x5a 48M 1M
check big.qcow2
rm -f big.qcow2
echo "PASS"
