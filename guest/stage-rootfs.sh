#!/bin/bash
# stage-rootfs.sh DIR: populate DIR with the guest userland shared by both
# images: busybox (+ applet links), guest/rootfs/overlay, the guest programs, dropbear.
# Requires build-busybox.sh, build-dropbear.sh and build-programs.sh to have run. Used by
# build-initramfs.sh and build-rootfs.sh.
. "$(dirname "$0")/lib.sh"
STAGE=${1:?usage: stage-rootfs.sh DIR}
BB_OUT="$BUILD_DIR/busybox-build"
BB_SRC=$(ls -d "$BUILD_DIR"/busybox-src/busybox-1.35*/ | head -n1)
[ -x "$BB_OUT/busybox" ] || die "run guest/build-busybox.sh first"
[ -x "$BUILD_DIR/programs/nimbus-cpubench" ] || die "run guest/build-programs.sh first"
DB_BIN="$BUILD_DIR/dropbear-build/dropbearmulti"
[ -x "$DB_BIN" ] || die "run guest/build-dropbear.sh first"

rm -rf "$STAGE"
mkdir -p "$STAGE"
# Installs bin/busybox plus relative symlinks for every applet.
make -C "$BB_SRC" O="$BB_OUT" install CONFIG_PREFIX="$STAGE" >/dev/null
for d in dev proc sys tmp run root mnt etc usr/bin usr/sbin var/log; do mkdir -p "$STAGE/$d"; done
ln -sfn /run "$STAGE/var/run"
cp -a "$GUEST_DIR/rootfs/overlay/." "$STAGE/"
# The kernel's default init for a disk root is /sbin/init: point it at our script.
ln -sfn ../init "$STAGE/sbin/init"
for p in "$BUILD_DIR"/programs/nimbus-*; do
  "${CROSS}strip" -o "$STAGE/usr/bin/$(basename "$p")" "$p"
  chmod 755 "$STAGE/usr/bin/$(basename "$p")"
done
# dropbear: one multi-call binary, called by its links' names.
"${CROSS}strip" -o "$STAGE/usr/sbin/dropbearmulti" "$DB_BIN"
chmod 755 "$STAGE/usr/sbin/dropbearmulti"
ln -sfn dropbearmulti "$STAGE/usr/sbin/dropbear"
ln -sfn ../sbin/dropbearmulti "$STAGE/usr/bin/dropbearkey"
# Modes must not depend on the builder's umask or checkout: normalise them.
chmod -R u=rwX,go=rX "$STAGE"
chmod 700 "$STAGE/root"
chmod 1777 "$STAGE/tmp"
chmod 600 "$STAGE/etc/shadow"
# Normalise time stamps for reproducible images.
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
