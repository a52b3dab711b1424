#include "machine/virt/boot_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace nimbus::machine::virt {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO or pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

}  // namespace

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / 1048576.0); }

Result<BootFile> BootFile::open(const std::string& path, const char* what, uint64_t max_size) {
  // O_NONBLOCK: opening a FIFO with no writer (or a tty waiting for carrier) must not
  // block; the file is refused below anyway unless it is regular, where the flag does
  // nothing.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    return Status::error(fmt::format("cannot open {} '{}': {}", what, path, std::strerror(errno)));
  }
  BootFile f(fd, path, what, 0);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return Status::error(fmt::format("cannot stat {} '{}': {}", what, path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::error(
        fmt::format("{} '{}' is {}: give a regular file", what, path, kind_of(st.st_mode)));
  }
  f.size_ = static_cast<uint64_t>(st.st_size);
  if (f.size_ > max_size) {
    return Status::error(fmt::format("{} '{}' ({}) is larger than the VM's memory ({})", what, path,
                                     mib(f.size_), mib(max_size)));
  }
  return f;
}

BootFile::BootFile(BootFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      what_(other.what_),
      size_(other.size_) {}

BootFile& BootFile::operator=(BootFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    what_ = other.what_;
    size_ = other.size_;
  }
  return *this;
}

BootFile::~BootFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status BootFile::read_exact(uint8_t* dst, size_t len) const {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd_, dst + done, len - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status::error(
          fmt::format("cannot read {} '{}': {}", what_, path_, std::strerror(errno)));
    }
    if (n == 0) {
      return Status::error(
          fmt::format("cannot read {} '{}': it shrank while being read", what_, path_));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::vector<uint8_t>> BootFile::head(size_t len) const {
  if (len > size_) len = static_cast<size_t>(size_);
  std::vector<uint8_t> out(len);
  if (Status s = read_exact(out.data(), len); !s.ok()) return s;
  return out;
}

Status BootFile::copy_to(mem::Bus& bus, uint64_t paddr) const {
  uint8_t* dst = bus.ram_ptr(paddr, size_);
  if (dst == nullptr) {
    return Status::error(fmt::format("{} '{}' does not fit in RAM at {:#x}", what_, path_, paddr));
  }
  // Pre-faulted in one call: first touches of guest RAM one page at a time cost far more
  // than the copy.
  bus.populate(paddr, size_);
  return read_exact(dst, static_cast<size_t>(size_));
}

}  // namespace nimbus::machine::virt
