#!/bin/bash
# Build a static riscv64 dropbear SSH server (2022.83, Debian 12's source package
# with Debian's patches) as one multi-call binary: dropbear + dropbearkey.
# Password authentication is compiled out (guest/dropbear/localoptions.h), so it
# needs neither libcrypt nor zlib. Output: $BUILD_DIR/dropbear-build/dropbearmulti
# (installed by stage-rootfs.sh; not committed itself).
. "$(dirname "$0")/lib.sh"

ensure_pkgs gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-libc-dev-riscv64-cross \
  make dpkg-dev bzip2 xz-utils
ensure_deb_src

SRCROOT="$BUILD_DIR/dropbear-src"
OUT="$BUILD_DIR/dropbear-build"
mkdir -p "$SRCROOT"

SRC=$(ls -d "$SRCROOT"/dropbear-20*/ 2>/dev/null | head -n1 || true)
if [ -z "$SRC" ]; then
  log "fetching dropbear source package (bookworm)"
  (cd "$SRCROOT" && apt-get source dropbear)
  SRC=$(ls -d "$SRCROOT"/dropbear-20*/ | head -n1)
fi
SRC=${SRC%/}
log "source: $SRC"

# A fresh out-of-tree build each time (configure caches nothing we want to keep).
rm -rf "$OUT"
mkdir -p "$OUT"
cp "$GUEST_DIR/dropbear/localoptions.h" "$OUT/localoptions.h"
cd "$OUT"
# Debian's cross gcc defaults to PIE: static non-PIE explicitly. --disable-harden
# because its probe adds -pie; the useful hardening flags are given here instead.
# ac_cv_*crypt*=no: never link libcrypt (there is no password authentication).
# -ffile-prefix-map: assertions name source files without the build directory, so the
# binary does not depend on where it was built.
"$SRC/configure" --host=riscv64-linux-gnu --enable-static --disable-harden \
  --disable-zlib --disable-pam --disable-lastlog --disable-utmp --disable-utmpx \
  --disable-wtmp --disable-wtmpx --disable-pututline --disable-pututxline \
  --enable-bundled-libtom \
  CC="${CROSS}gcc" AR="${CROSS}ar" RANLIB="${CROSS}ranlib" STRIP="${CROSS}strip" \
  CFLAGS="-O2 -fno-pie -fstack-protector-strong -D_FORTIFY_SOURCE=2 -ffile-prefix-map=$SRC/=" \
  LDFLAGS="-static -no-pie" \
  ac_cv_func_crypt=no ac_cv_lib_crypt_crypt=no >configure.log 2>&1 ||
  { tail -n 30 configure.log; die "configure failed"; }

log "building dropbearmulti"
make -j"$JOBS" PROGRAMS="dropbear dropbearkey" MULTI=1 >make.log 2>&1 ||
  { tail -n 40 make.log; die "make failed"; }
BIN="$OUT/dropbearmulti"
"${CROSS}readelf" -h "$BIN" | grep -q 'RISC-V' || die "not a RISC-V binary"
if "${CROSS}readelf" -l "$BIN" | grep -q INTERP; then die "dropbearmulti is not static"; fi
"${CROSS}readelf" -h "$BIN" | grep -q 'EXEC (Executable file)' || die "dropbearmulti is PIE"
if "${CROSS}nm" "$BIN" | grep -qw crypt; then die "dropbearmulti links crypt()"; fi
log "done: $BIN ($(stat -c %s "$BIN") bytes)"
