#!/bin/bash
# Build a static riscv64 busybox 1.35 from Debian's source package.
# Output: $BUILD_DIR/busybox-build/busybox (used by build-initramfs.sh and
# build-rootfs.sh; not committed itself).
. "$(dirname "$0")/lib.sh"

ensure_pkgs gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-libc-dev-riscv64-cross \
  make dpkg-dev bzip2 xz-utils
ensure_deb_src

SRCROOT="$BUILD_DIR/busybox-src"
OUT="$BUILD_DIR/busybox-build"
FRAG="$GUEST_DIR/busybox/nimbus.config"
mkdir -p "$SRCROOT" "$OUT"

SRC=$(ls -d "$SRCROOT"/busybox-1.35*/ 2>/dev/null | head -n1 || true)
if [ -z "$SRC" ]; then
  log "fetching busybox source package (bookworm)"
  (cd "$SRCROOT" && apt-get source busybox)
  SRC=$(ls -d "$SRCROOT"/busybox-1.35*/ | head -n1)
fi
SRC=${SRC%/}
log "source: $SRC"

BMAKE=(make -C "$SRC" O="$OUT" -j"$JOBS")
"${BMAKE[@]}" defconfig >/dev/null
# Apply the overrides: drop any existing setting of each symbol, then append.
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  sym=${line%%=*}; val=${line#*=}
  sed -i "/^$sym=/d; /^# $sym is not set/d" "$OUT/.config"
  if [ "$val" = n ]; then echo "# $sym is not set"; else echo "$line"; fi >> "$OUT/.config"
done < "$FRAG"
{ yes "" || true; } | "${BMAKE[@]}" oldconfig >/dev/null
bad=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  sym=${line%%=*}; val=${line#*=}
  if [ "$val" = n ]; then
    if grep -q "^$sym=" "$OUT/.config"; then log "should be off: $sym"; bad=1; fi
  else
    grep -qxF "$line" "$OUT/.config" || { log "option lost: $line"; bad=1; }
  fi
done < "$FRAG"
[ "$bad" -eq 0 ] || die "busybox configuration check failed"

log "building busybox"
"${BMAKE[@]}" busybox
file "$OUT/busybox" 2>/dev/null || true
"${CROSS}readelf" -h "$OUT/busybox" | grep -q 'RISC-V' || die "not a RISC-V binary"
if "${CROSS}readelf" -l "$OUT/busybox" | grep -q INTERP; then die "busybox is not static"; fi
log "done: $OUT/busybox ($(stat -c %s "$OUT/busybox") bytes)"
