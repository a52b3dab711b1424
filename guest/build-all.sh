#!/bin/bash
# Rebuild every committed guest image and images/SHA256SUMS.
# Set NIMBUS_GUEST_BUILD to choose the scratch directory (default
# /tmp/nimbus-guest-build) and JOBS for make parallelism.
. "$(dirname "$0")/lib.sh"
t() { local s; s=$(date +%s); "$@"; log "$(basename "$1") took $(( $(date +%s) - s )) s"; }
t "$GUEST_DIR/build-kernel.sh"
t "$GUEST_DIR/build-busybox.sh"
t "$GUEST_DIR/build-dropbear.sh"
t "$GUEST_DIR/build-programs.sh"
t "$GUEST_DIR/build-initramfs.sh"
t "$GUEST_DIR/build-rootfs.sh"
"$GUEST_DIR/update-sums.sh"
