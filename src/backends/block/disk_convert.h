// Flattening a disk image: a qcow2 overlay and its backing chain (or any raw or qcow2
// disk) written out as one standalone qcow2 image, as `qemu-img convert -O qcow2` does.
// What nimbusd's image export uses to turn a VM's disk into an image of its own.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nimbus::backends {

struct FlattenStats {
  uint64_t virtual_size = 0;      // of the source and of the new image
  uint64_t clusters_written = 0;  // the clusters that hold data (all-zero ones are left out)
  uint64_t file_size = 0;         // of the new image
};

// Reads the disk at `source` (format probed, backing files followed, opened read-only with
// a reader's locks) and writes `dest` (which must not exist: never overwritten) as a
// version-3 qcow2 image without a backing file, of the same virtual size, in which only
// the clusters that hold a nonzero byte are allocated. Synced before it returns. On any
// failure `dest` is removed.
Result<FlattenStats> flatten_to_qcow2(const std::string& source, const std::string& dest,
                                      uint64_t cluster_size = 65536);

}  // namespace nimbus::backends
