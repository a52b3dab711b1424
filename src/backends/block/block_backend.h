// A virtual disk's host side. Device models (virtio-blk) see only this interface, so the
// same device works over a raw file, a qcow2 image or memory in a test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nimbus::backends {

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  // Virtual size in bytes (what the guest sees).
  virtual uint64_t size() const = 0;
  virtual bool read_only() const = 0;
  // Byte-granular I/O at any offset; an access past size() is an error. Called from one
  // I/O thread at a time, never from a vCPU thread.
  virtual Status read(uint64_t offset, uint8_t* buf, size_t len) = 0;
  virtual Status write(uint64_t offset, const uint8_t* buf, size_t len) = 0;
  // Makes every completed write durable (fsync of the file and its metadata).
  virtual Status flush() = 0;
  // Tells the backend the range is unused; it may free space. Reads of it return zeros
  // or the old data.
  virtual Status discard(uint64_t offset, uint64_t len) = 0;
  // The guest ranges (offset, length), sorted and disjoint, whose content this image holds
  // itself rather than its backing file or a hole: what a copy onto a fresh image over the
  // same backing (live migration) must carry. May over-report; by default the whole disk.
  virtual Result<std::vector<std::pair<uint64_t, uint64_t>>> own_extents() {
    return std::vector<std::pair<uint64_t, uint64_t>>{{0, size()}};
  }
};

enum class DiskFormat { kAuto, kRaw, kQcow2 };

struct DiskOptions {
  std::string path;
  DiskFormat format = DiskFormat::kAuto;  // kAuto: qcow2 if the file has the qcow2 magic
  bool read_only = false;
};

// Opens a disk image. A missing, unreadable, corrupt or truncated image is an error with
// a message that names the file and the problem.
Result<std::unique_ptr<BlockBackend>> open_disk(const DiskOptions& options);

// Backing files are opened through open_disk with the images above them (device and
// inode numbers, top first): a backing file that is one of them is a loop, and a chain
// longer than kMaxBackingChain is refused.
constexpr int kMaxBackingChain = 16;
struct BackingChain {
  std::vector<std::pair<uint64_t, uint64_t>> above;
};
Result<std::unique_ptr<BlockBackend>> open_disk(const DiskOptions& options,
                                                const BackingChain& chain);

// kQcow2 if the file starts with the qcow2 magic, else kRaw; an error if it cannot be read.
Result<DiskFormat> probe_disk_format(const std::string& path);

}  // namespace nimbus::backends
