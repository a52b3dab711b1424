#!/bin/bash
# Build the Nimbus guest kernel (Linux 6.1 from Debian's linux-source-6.1)
# as a raw RISC-V Image: images/Image (+ images/Image.config, the full .config).
#
# Config = `make tinyconfig` + guest/kernel/nimbus.config, resolved with
# olddefconfig; the script fails if any option of the fragment did not stick.
. "$(dirname "$0")/lib.sh"

ensure_pkgs linux-source-6.1 gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu \
  make bc flex bison cpio xz-utils libelf-dev libssl-dev perl python3

SRC_TAR=$(ls /usr/src/linux-source-6.1.tar.xz)
SRC="$BUILD_DIR/linux-source-6.1"
OUT="$BUILD_DIR/linux-build"
FRAG="$GUEST_DIR/kernel/nimbus.config"
mkdir -p "$BUILD_DIR" "$OUT" "$IMAGES_DIR"

if [ ! -f "$SRC/Makefile" ]; then
  log "extracting $SRC_TAR"
  tar -C "$BUILD_DIR" -xf "$SRC_TAR"
fi

KMAKE=(make -C "$SRC" O="$OUT" ARCH=riscv CROSS_COMPILE="$CROSS" -j"$JOBS")

log "configuring (tinyconfig + $(basename "$FRAG"))"
"${KMAKE[@]}" tinyconfig >/dev/null
"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OUT" "$OUT/.config" "$FRAG" >/dev/null
"${KMAKE[@]}" olddefconfig >/dev/null

# Check every option of the fragment against the final .config.
bad=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*)
      grep -qxF "$line" "$OUT/.config" || { log "option lost: $line (got: $(grep "^${line%%=*}=" "$OUT/.config" || echo unset))"; bad=1; } ;;
    "# CONFIG_"*" is not set")
      opt=${line#\# }; opt=${opt%% *}
      if grep -q "^$opt=" "$OUT/.config"; then log "option should be off: $opt"; bad=1; fi ;;
  esac
done < "$FRAG"
# Nothing beyond rv64imafdc_zicsr_zifencei: no vector, no Svpbmt/Zicbom errata.
for opt in CONFIG_RISCV_ISA_V CONFIG_RISCV_ISA_SVPBMT CONFIG_RISCV_ISA_ZICBOM CONFIG_ERRATA_THEAD_PBMT; do
  if grep -q "^$opt=y" "$OUT/.config"; then log "$opt must be off"; bad=1; fi
done
[ "$bad" -eq 0 ] || die "kernel configuration check failed"
log "configuration check passed"

log "building Image (this takes a while)"
"${KMAKE[@]}" Image
install -m 644 "$OUT/arch/riscv/boot/Image" "$IMAGES_DIR/Image"
# Keep the fully resolved config next to the image.
cp "$OUT/.config" "$IMAGES_DIR/Image.config"
log "done: $IMAGES_DIR/Image ($(stat -c %s "$IMAGES_DIR/Image") bytes)"
