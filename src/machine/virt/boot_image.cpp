#include "machine/virt/boot_image.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "machine/elf.h"

namespace nimbus::machine::virt {

namespace {

// The area at the top of RAM kept for the device tree and the firmware handoff struct.
constexpr uint64_t kDtbArea = 2ull << 20;
constexpr uint64_t kPage = 4096;

Result<std::vector<uint8_t>> read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(fmt::format("cannot open {} '{}': {}", what, path, std::strerror(errno)));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::error(fmt::format("cannot read {} '{}'", what, path));
  return bytes;
}

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / 1048576.0); }

uint64_t le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// RISC-V Linux Image header (Documentation/riscv/boot-image-header.rst): text_offset at
// byte 8, image_size at 16, magic2 "RSC\x05" at 56.
Status load_kernel(const std::string& path, mem::Bus& bus, BootLayout& out) {
  auto bytes = read_file(path, "kernel");
  if (!bytes.ok()) return bytes.status();
  const std::vector<uint8_t>& b = *bytes;
  if (b.size() >= 4 && std::memcmp(b.data(), "\x7f" "ELF", 4) == 0) {
    return Status::error(fmt::format(
        "kernel '{}' is an ELF file; pass the raw Image (arch/riscv/boot/Image)", path));
  }
  if (b.size() < 64 || std::memcmp(b.data() + 56, "RSC\x05", 4) != 0) {
    return Status::error(fmt::format("kernel '{}' is not a RISC-V Linux Image (no RSC\\x05 magic)", path));
  }
  const uint64_t text_offset = le64(b.data() + 8);
  const uint64_t image_size = std::max<uint64_t>(le64(b.data() + 16), b.size());
  const uint64_t load = bus.ram_base() + text_offset;
  if (text_offset >= bus.ram_size() || bus.ram_ptr(load, image_size) == nullptr) {
    return Status::error(fmt::format("kernel '{}' needs {} of RAM from {:#x}; the VM has {}", path,
                                     mib(image_size), load, mib(bus.ram_size())));
  }
  std::memcpy(bus.ram_ptr(load, b.size()), b.data(), b.size());
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
    auto bytes = read_file(files.initrd, "initrd");
    if (!bytes.ok()) return bytes.status();
    if (bytes->empty()) return Status::error(fmt::format("initrd '{}' is empty", files.initrd));
    const uint64_t size = bytes->size();
    const uint64_t top = ram_end - kDtbArea;
    if (size > top || ((top - size) & ~(kPage - 1)) < layout.kernel_end) {
      return Status::error(fmt::format(
          "the VM's memory ({}) is too small for the kernel ({}) and the initrd ({}): use a larger --memory",
          mib(bus.ram_size()), mib(layout.kernel_end - bus.ram_base()), mib(size)));
    }
    layout.initrd_start = (top - size) & ~(kPage - 1);
    layout.initrd_end = layout.initrd_start + size;
    std::memcpy(bus.ram_ptr(layout.initrd_start, size), bytes->data(), size);
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
