#!/bin/bash
# Build images/initramfs.cpio.gz: the guest userland as a gzip'd newc cpio,
# made with the kernel's usr/gen_init_cpio (no root needed: /dev/console is a
# "nod" entry in the file list). Entries are sorted, owned by 0:0 and carry a
# fixed mtime.
. "$(dirname "$0")/lib.sh"
ensure_pkgs gcc libc6-dev linux-source-6.1 xz-utils gzip

STAGE="$BUILD_DIR/initramfs-stage"
"$GUEST_DIR/stage-rootfs.sh" "$STAGE"

# gen_init_cpio from the same Linux source as the kernel.
GEN="$BUILD_DIR/gen_init_cpio"
if [ ! -x "$GEN" ]; then
  SRC_C="$BUILD_DIR/linux-source-6.1/usr/gen_init_cpio.c"
  if [ ! -f "$SRC_C" ]; then
    tar -C "$BUILD_DIR" -xf /usr/src/linux-source-6.1.tar.xz linux-source-6.1/usr/gen_init_cpio.c
  fi
  gcc -O2 -o "$GEN" "$SRC_C"
fi

LIST="$BUILD_DIR/initramfs.list"
{
  echo "nod /dev/console 0600 0 0 c 5 1"
  echo "nod /dev/null 0666 0 0 c 1 3"
  (cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort) | while IFS= read -r rel; do
    p=${rel#.}; f="$STAGE$p"
    mode=$(stat -c %a "$f")
    if [ -L "$f" ]; then
      echo "slink $p $(readlink "$f") 0777 0 0"
    elif [ -d "$f" ]; then
      echo "dir $p $mode 0 0"
    elif [ -f "$f" ]; then
      echo "file $p $f $mode 0 0"
    else
      die "unsupported file type: $f"
    fi
  done
} > "$LIST"
# /dev must exist before the nodes in it: gen_init_cpio processes lines in order.
sed -i '/^dir \/dev /d' "$LIST"
sed -i '1i dir /dev 0755 0 0' "$LIST"

mkdir -p "$IMAGES_DIR"
"$GEN" -t "$SOURCE_DATE_EPOCH" "$LIST" | gzip -n -9 > "$IMAGES_DIR/initramfs.cpio.gz"
log "done: $IMAGES_DIR/initramfs.cpio.gz ($(stat -c %s "$IMAGES_DIR/initramfs.cpio.gz") bytes)"
