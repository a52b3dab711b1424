#!/bin/sh
# Cross-check the ISA tests under QEMU: tests/isa/run-qemu.sh BUILD_DIR [--exact] [name...]
# By default runs BUILD_DIR/tests/isa/qemu/<name>.elf (built with -DQEMU_DIFF, which skips
# the checks where QEMU 7.2 knowingly differs from Nimbus, see README.md); with --exact
# runs the Nimbus ELFs themselves (expect the documented differences to fail).
# Uses QEMU's spike machine (HTIF tohost) with -icount so that instret counts instructions.
set -u
dir=${1:?usage: run-qemu.sh BUILD_DIR [--exact] [test...]}/tests/isa
shift
sub=qemu/
if [ "${1:-}" = --exact ]; then sub=; shift; fi
[ $# -gt 0 ] || set -- $(cd "$dir/$sub" && ls *.elf | sed 's/\.elf$//')
fails=0
for t in "$@"; do
  timeout 20 qemu-system-riscv64 -M spike -cpu rv64,zba=true,zbb=true,zbs=true -icount shift=0 \
      -bios none -kernel "$dir/$sub$t.elf" -nographic -monitor none -serial none </dev/null >/dev/null 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then echo "PASS  $t"; else echo "FAIL  $t (status $rc)"; fails=$((fails+1)); fi
done
exit $fails
