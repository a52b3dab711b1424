// A raw disk image: the guest's bytes are the file's bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backends/block/block_backend.h"

namespace nimbus::backends {

class RawFile final : public BlockBackend {
 public:
  // Opens `path` (read-only when `read_only`); the virtual size is the file's size (or the
  // block device's size).
  static Result<std::unique_ptr<RawFile>> open(const std::string& path, bool read_only);
  ~RawFile() override;
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  // Bytes past the end of a file that shrank underneath us read as zeros.
  Status read(uint64_t offset, uint8_t* buf, size_t len) override;
  Status write(uint64_t offset, const uint8_t* buf, size_t len) override;
  Status flush() override;
  // Punches a hole where the host filesystem supports it; otherwise does nothing.
  Status discard(uint64_t offset, uint64_t len) override;
  // The file's data ranges (SEEK_DATA/SEEK_HOLE; the whole file where holes are not known).
  Result<std::vector<std::pair<uint64_t, uint64_t>>> own_extents() override;

 private:
  RawFile(int fd, std::string path, uint64_t size, bool read_only)
      : fd_(fd), path_(std::move(path)), size_(size), read_only_(read_only) {}
  Status check_range(uint64_t offset, uint64_t len) const;

  int fd_;
  std::string path_;
  uint64_t size_;
  bool read_only_;
};

// pread/pwrite that retry on EINTR and short transfers. A read stops at end of file and
// fills the rest of `buf` with zeros. The error message names `path`.
Status pread_full(int fd, const std::string& path, uint64_t offset, uint8_t* buf, size_t len);
Status pwrite_full(int fd, const std::string& path, uint64_t offset, const uint8_t* buf,
                   size_t len);

}  // namespace nimbus::backends
