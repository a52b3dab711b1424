#include "machine/virt/boot_image.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "machine/elf.h"

namespace nimbus::machine::virt {

namespace {

// The area at the top of RAM kept for the device tree and the firmware handoff struct.
constexpr uint64_t kDtbArea = 2ull << 20;
constexpr uint64_t kPage = 4096;

// An open file descriptor, closed at the end of the scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<int> open_file(const std::string& path, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error(fmt::format("cannot open {} '{}': {}", what, path, std::strerror(errno)));
  return fd;
}

// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
Result<size_t> read_at(int fd, uint8_t* dst, size_t len, uint64_t offset, const std::string& path,
                       const char* what) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, dst + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// The whole file, for what is small or cannot be sized up front (a pipe, /dev/fd/N).
Result<std::vector<uint8_t>> read_all(int fd, const std::string& path, const char* what) {
  std::vector<uint8_t> bytes;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
  uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
    if (n == 0) return bytes;
    bytes.insert(bytes.end(), buf, buf + n);
  }
}

Result<std::vector<uint8_t>> read_file(const std::string& path, const char* what) {
  auto fd = open_file(path, what);
  if (!fd.ok()) return fd.status();
  Fd f(*fd);
  return read_all(f.get(), path, what);
}

// A boot file is copied into guest RAM straight from the file: a regular file is read
// into place (its pages pre-faulted in one call: first touches of guest RAM one page at
// a time cost far more than the copy); anything else is read whole first.
class BootFile {
 public:
  static Result<BootFile> open(const std::string& path, const char* what) {
    auto fd = open_file(path, what);
    if (!fd.ok()) return fd.status();
    BootFile f(*fd, path, what);
    struct stat st;
    if (::fstat(f.fd_.get(), &st) == 0 && S_ISREG(st.st_mode)) {
      f.size_ = static_cast<uint64_t>(st.st_size);
    } else {
      auto bytes = read_all(f.fd_.get(), path, what);
      if (!bytes.ok()) return bytes.status();
      f.bytes_ = std::move(*bytes);
      f.buffered_ = true;
      f.size_ = f.bytes_.size();
    }
    return f;
  }

  uint64_t size() const { return size_; }

  // The first min(len, size) bytes.
  Result<std::vector<uint8_t>> head(size_t len) {
    len = static_cast<size_t>(std::min<uint64_t>(len, size_));
    if (buffered_) return std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + static_cast<ptrdiff_t>(len));
    std::vector<uint8_t> out(len);
    auto n = read_at(fd_.get(), out.data(), len, 0, path_, what_);
    if (!n.ok()) return n.status();
    out.resize(*n);
    return out;
  }

  // Copies the whole file to guest RAM at `paddr` (the caller checked that it fits).
  Status copy_to(mem::Bus& bus, uint64_t paddr) {
    uint8_t* dst = bus.ram_ptr(paddr, size_);
    if (dst == nullptr) return Status::error(fmt::format("{} '{}' does not fit in RAM", what_, path_));
    bus.populate(paddr, size_);
    if (buffered_) {
      std::memcpy(dst, bytes_.data(), size_);
      return {};
    }
    auto n = read_at(fd_.get(), dst, size_, 0, path_, what_);
    if (!n.ok()) return n.status();
    if (*n != size_) return Status::error(fmt::format("cannot read {} '{}': it changed while being read", what_, path_));
    return {};
  }

 private:
  BootFile(int fd, const std::string& path, const char* what) : fd_(fd), path_(path), what_(what) {}

  Fd fd_;
  std::string path_;
  const char* what_;
  uint64_t size_ = 0;
  bool buffered_ = false;
  std::vector<uint8_t> bytes_;
};

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / 1048576.0); }

uint64_t le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// RISC-V Linux Image header (Documentation/riscv/boot-image-header.rst): text_offset at
// byte 8, image_size at 16, magic2 "RSC\x05" at 56.
Status load_kernel(const std::string& path, mem::Bus& bus, BootLayout& out) {
  auto file = BootFile::open(path, "kernel");
  if (!file.ok()) return file.status();
  auto head = file->head(64);
  if (!head.ok()) return head.status();
  const std::vector<uint8_t>& b = *head;
  if (b.size() >= 4 && std::memcmp(b.data(), "\x7f" "ELF", 4) == 0) {
    return Status::error(fmt::format(
        "kernel '{}' is an ELF file; pass the raw Image (arch/riscv/boot/Image)", path));
  }
  if (b.size() < 64 || std::memcmp(b.data() + 56, "RSC\x05", 4) != 0) {
    return Status::error(fmt::format("kernel '{}' is not a RISC-V Linux Image (no RSC\\x05 magic)", path));
  }
  const uint64_t text_offset = le64(b.data() + 8);
  const uint64_t image_size = std::max<uint64_t>(le64(b.data() + 16), file->size());
  const uint64_t load = bus.ram_base() + text_offset;
  if (text_offset >= bus.ram_size() || bus.ram_ptr(load, image_size) == nullptr) {
    return Status::error(fmt::format("kernel '{}' needs {} of RAM from {:#x}; the VM has {}", path,
                                     mib(image_size), load, mib(bus.ram_size())));
  }
  if (Status s = file->copy_to(bus, load); !s.ok()) return s;
  out.kernel_entry = load;
  out.kernel_end = load + image_size;
  return {};
}

Status load_firmware(const std::string& path, mem::Bus& bus, BootLayout& out) {
  auto bytes = read_file(path, "firmware");
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() >= 4 && std::memcmp(bytes->data(), "\x7f" "ELF", 4) == 0) {
    auto img = read_elf(path);
    if (!img.ok()) return Status::error("firmware: " + img.message());
    if (Status s = load_elf(*img, bus, path); !s.ok()) return s;
    out.firmware_entry = img->entry;
  } else {
    if (bytes->empty() || bus.ram_ptr(bus.ram_base(), bytes->size()) == nullptr) {
      return Status::error(fmt::format("firmware '{}' is empty or larger than RAM", path));
    }
    std::memcpy(bus.ram_ptr(bus.ram_base(), bytes->size()), bytes->data(), bytes->size());
    out.firmware_entry = bus.ram_base();
  }
  return {};
}

}  // namespace

Result<BootLayout> load_boot_files(const BootFiles& files, mem::Bus& bus) {
  BootLayout layout;
  if (!files.firmware.empty()) {
    if (Status s = load_firmware(files.firmware, bus, layout); !s.ok()) return s;
  }
  if (Status s = load_kernel(files.kernel, bus, layout); !s.ok()) return s;
  const uint64_t ram_end = bus.ram_base() + bus.ram_size();
  if (!files.initrd.empty()) {
    auto file = BootFile::open(files.initrd, "initrd");
    if (!file.ok()) return file.status();
    if (file->size() == 0) return Status::error(fmt::format("initrd '{}' is empty", files.initrd));
    const uint64_t size = file->size();
    const uint64_t top = ram_end - kDtbArea;
    if (size > top || ((top - size) & ~(kPage - 1)) < layout.kernel_end) {
      return Status::error(fmt::format(
          "the VM's memory ({}) is too small for the kernel ({}) and the initrd ({}): use a larger --memory",
          mib(bus.ram_size()), mib(layout.kernel_end - bus.ram_base()), mib(size)));
    }
    layout.initrd_start = (top - size) & ~(kPage - 1);
    layout.initrd_end = layout.initrd_start + size;
    if (Status s = file->copy_to(bus, layout.initrd_start); !s.ok()) return s;
  }
  return layout;
}

Status place_dtb(const std::vector<uint8_t>& dtb, mem::Bus& bus, BootLayout& layout) {
  const uint64_t ram_end = bus.ram_base() + bus.ram_size();
  const uint64_t floor = std::max(layout.kernel_end, layout.initrd_end);
  if (dtb.size() + 64 > kDtbArea || ram_end < floor + kDtbArea) {
    return Status::error(fmt::format("the VM's memory ({}) is too small for the kernel: use a larger --memory",
                                     mib(bus.ram_size())));
  }
  layout.dtb_addr = ram_end - kDtbArea;  // 2 MiB aligned, as Linux prefers
  std::memcpy(bus.ram_ptr(layout.dtb_addr, dtb.size()), dtb.data(), dtb.size());
  // OpenSBI's struct fw_dynamic_info (magic, version 2, next_addr, next_mode = S,
  // options, boot_hart = -1: any hart may boot), right after the blob.
  layout.fw_dynamic_info = (layout.dtb_addr + dtb.size() + 63) & ~63ull;
  const uint64_t info[6] = {0x4942534f, 2, layout.kernel_entry, 1, 0, ~0ull};
  std::memcpy(bus.ram_ptr(layout.fw_dynamic_info, sizeof(info)), info, sizeof(info));
  return {};
}

}  // namespace nimbus::machine::virt
