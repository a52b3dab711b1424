// Growing a disk image in place (raw or qcow2): what `nimbus image resize` and the VM API's
// drive resize do. Shrinking is refused: it would cut off the guest's data.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nimbus::backends {

// Current virtual size of the image (qcow2: its virtual disk size; raw: the file size).
Result<uint64_t> disk_size(const std::string& path);
// Grows the image to `new_size` bytes (no-op when equal).
Status resize_disk(const std::string& path, uint64_t new_size);

}  // namespace nimbus::backends
