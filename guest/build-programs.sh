#!/bin/bash
# Cross-compile the Nimbus guest programs (guest/programs/*.c) as static
# riscv64 executables into $BUILD_DIR/programs (installed into both images).
. "$(dirname "$0")/lib.sh"
ensure_pkgs gcc-riscv64-linux-gnu libc6-dev-riscv64-cross make
make -C "$GUEST_DIR/programs" O="$BUILD_DIR/programs" CC="${CROSS}gcc" -B
for p in "$BUILD_DIR"/programs/nimbus-*; do
  if "${CROSS}readelf" -l "$p" | grep -q INTERP; then die "$p is not static"; fi
done
log "done: $(cd "$BUILD_DIR"/programs && echo nimbus-*)"
