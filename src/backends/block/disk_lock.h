// Disk image locking, compatible with QEMU's (block/file-posix.c), so that two writers can
// never have the same image open: not two Nimbus VMMs, and not Nimbus and QEMU.
//
// The scheme: open file description (OFD) byte-range locks, all of them shared (read)
// locks, on byte 100+p ("I hold permission p") and 200+p ("I do not let others hold p"),
// for the permissions p = 0 consistent read, 1 write, 2 write-unchanged, 3 resize. An
// opener first takes its own bytes, then tests (F_OFD_GETLK) the bytes of the permissions
// it wants against others' "not shared" bytes and vice versa; two racing openers each see
// the other, so at worst both fail, never both succeed.
//
// A reader holds consistent read and shares neither write nor resize (what QEMU does for a
// qcow2 or raw image, and for backing files): readers coexist, a writer excludes them all.
//
// The locks belong to the open file description: every thread using the descriptor has
// them, and they go away when its last descriptor is closed, including when the process
// is killed.
#pragma once

#include <string>

#include "common/status.h"

namespace nimbus::backends {

// Takes a reader's (`write` false) or a writer's locks on `fd`, an open descriptor of the
// image at `path`. On a conflict: "disk image 'PATH' is in use by another process (locked
// ...)"; the caller closes `fd`, which drops what was taken. A filesystem without OFD
// locks is not an error (nothing is locked there, as with QEMU's locking=auto).
Status lock_disk_image(int fd, const std::string& path, bool write);

}  // namespace nimbus::backends
