// A file the VMM copies into guest RAM (a kernel, an initrd, a firmware), opened so that
// nothing about the file can make the VMM read forever or run out of memory: only a
// regular file is accepted (a device such as /dev/zero, a FIFO, a socket or a directory
// could be read without end, or block the open), it may be no larger than a limit, and
// exactly the size it had when opened is read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "mem/bus.h"

namespace nimbus::machine::virt {

class BootFile {
 public:
  // `what` names the file in messages ("kernel", "initrd", "firmware"). A file larger than
  // `max_size` (the guest's RAM) is refused without being read.
  static Result<BootFile> open(const std::string& path, const char* what, uint64_t max_size);

  BootFile(BootFile&& other) noexcept;
  BootFile& operator=(BootFile&& other) noexcept;
  BootFile(const BootFile&) = delete;
  BootFile& operator=(const BootFile&) = delete;
  ~BootFile();

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  const char* what() const { return what_; }

  // The first min(len, size()) bytes.
  Result<std::vector<uint8_t>> head(size_t len) const;
  // The whole file (size() bytes: the caller bounded it at open).
  Result<std::vector<uint8_t>> read_all() const { return head(static_cast<size_t>(size_)); }
  // Copies the whole file to guest RAM at `paddr`; fails if it does not fit there.
  Status copy_to(mem::Bus& bus, uint64_t paddr) const;

 private:
  BootFile(int fd, std::string path, const char* what, uint64_t size)
      : fd_(fd), path_(std::move(path)), what_(what), size_(size) {}
  // Reads exactly `len` bytes from offset 0 into `dst`.
  Status read_exact(uint8_t* dst, size_t len) const;

  int fd_ = -1;
  std::string path_;
  const char* what_ = "";
  uint64_t size_ = 0;
};

// "1.5 MiB": sizes in messages.
std::string mib(uint64_t bytes);

}  // namespace nimbus::machine::virt
