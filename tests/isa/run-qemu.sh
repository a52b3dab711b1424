#!/bin/sh
# Cross-check the ISA tests under QEMU: tests/isa/run-qemu.sh BUILD_DIR [name...]
# Uses QEMU's spike machine (HTIF tohost). Prints PASS/FAIL(status) per test.
# Known, documented differences between QEMU 7.2 and Nimbus are listed in README.md.
set -u
dir=${1:?usage: run-qemu.sh BUILD_DIR [test...]}/tests/isa
shift
[ $# -gt 0 ] || set -- $(cd "$dir" && ls *.elf | sed 's/\.elf$//')
fails=0
for t in "$@"; do
  timeout 20 qemu-system-riscv64 -M spike -cpu rv64,zba=true,zbb=true,zbs=true -icount shift=0 \
      -bios none -kernel "$dir/$t.elf" -nographic -monitor none -serial none </dev/null >/dev/null 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then echo "PASS  $t"; else echo "FAIL  $t (status $rc)"; fails=$((fails+1)); fi
done
exit $fails
