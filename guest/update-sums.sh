#!/bin/bash
# Write images/SHA256SUMS (paths relative to images/; check with
# `cd images && sha256sum -c SHA256SUMS`, which is what CTest images.checksums runs).
. "$(dirname "$0")/lib.sh"
cd "$IMAGES_DIR"
sha256sum Image Image.config initramfs.cpio.gz rootfs.ext4 > SHA256SUMS
cat SHA256SUMS
