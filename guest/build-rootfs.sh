#!/bin/bash
# Build images/rootfs.ext4: the guest userland plus /www (a web page served by
# busybox httpd at boot) as a raw ext4 image, made with `mke2fs -d` (no root
# needed). Fixed UUID, hash seed and time stamps make rebuilds identical.
# The image is small and mostly empty; grow a per-VM copy with
#   truncate -s 1G vm.ext4 && e2fsck -f vm.ext4 && resize2fs vm.ext4
. "$(dirname "$0")/lib.sh"
ensure_pkgs e2fsprogs

SIZE_MIB=${ROOTFS_SIZE_MIB:-32}
UUID=4e494d42-5553-4000-8000-726f6f746673      # "NIMBUS" ... "rootfs"
HASH_SEED=4e494d42-5553-4000-8000-686173687365

STAGE="$BUILD_DIR/rootfs-stage"
"$GUEST_DIR/stage-rootfs.sh" "$STAGE"
mkdir -p "$STAGE/www"
cp -a "$GUEST_DIR/rootfs/www/." "$STAGE/www/"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

OUT="$IMAGES_DIR/rootfs.ext4"
TMP="$BUILD_DIR/rootfs.ext4.tmp"
rm -f "$TMP"
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
mke2fs -q -F -t ext4 -b 4096 -I 256 -N 4096 -L nimbus-root -U "$UUID" -m 0 \
  -E "hash_seed=$HASH_SEED,root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
  -d "$STAGE" "$TMP" "${SIZE_MIB}M" >/dev/null

# mke2fs -d copies the builder's uid/gid and each file's ctime (which cannot
# be set on the host): make everything root-owned with a fixed ctime.
{
  echo "/lost+found"
  (cd "$STAGE" && find . -mindepth 1 | sed 's|^\.||')
} | while IFS= read -r p; do
  printf 'sif "%s" uid 0\nsif "%s" gid 0\nsif "%s" ctime @%s\n' "$p" "$p" "$p" "$SOURCE_DATE_EPOCH"
done > "$BUILD_DIR/rootfs.debugfs"
printf 'sif / ctime @%s\n' "$SOURCE_DATE_EPOCH" >> "$BUILD_DIR/rootfs.debugfs"
debugfs -w -f "$BUILD_DIR/rootfs.debugfs" "$TMP" >/dev/null 2>&1
e2fsck -fn "$TMP" >/dev/null 2>&1 || die "e2fsck found problems"
mkdir -p "$IMAGES_DIR"
mv -f "$TMP" "$OUT"
log "done: $OUT (${SIZE_MIB} MiB)"
