#include "machine/virt/boot_image.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "machine/elf.h"
#include "machine/virt/boot_file.h"
#include "machine/virt/linux_image.h"
#include "machine/virt/memory_map.h"

namespace nimbus::machine::virt {

namespace {

// The area at the top of RAM kept for the device tree and the firmware handoff struct.
constexpr uint64_t kDtbArea = 2ull << 20;
constexpr uint64_t kPage = 4096;

// The boot files opened, checked and placed, before anything is copied. Offsets are from
// the start of RAM.
struct BootPlan {
  std::optional<BootFile> kernel, initrd;
  std::optional<ElfImage> firmware_elf;
  std::optional<std::vector<uint8_t>> firmware_raw;
  std::string firmware_path;
  uint64_t kernel_offset = 0, kernel_end = 0;
  uint64_t initrd_offset = 0;
};

Status plan_firmware(const std::string& path, uint64_t ram_base, uint64_t ram_size,
                     BootPlan& plan) {
  auto file = BootFile::open(path, "firmware", ram_size);
  if (!file.ok()) return file.status();
  if (file->size() == 0) return Status::error(fmt::format("firmware '{}' is empty", path));
  auto bytes = file->read_all();
  if (!bytes.ok()) return bytes.status();
  plan.firmware_path = path;
  if (bytes->size() >= 4 && std::memcmp(bytes->data(),
                                        "\x7f"
                                        "ELF",
                                        4) == 0) {
    auto img = parse_elf(std::move(*bytes), path);
    if (!img.ok()) return Status::error("firmware: " + img.message());
    for (const ElfSegment& s : img->segments) {
      if (s.paddr < ram_base || s.paddr - ram_base > ram_size ||
          s.memsz > ram_size - (s.paddr - ram_base)) {
        return Status::error(fmt::format(
            "firmware '{}': segment at {:#x} ({} bytes) lies outside RAM [{:#x}, {:#x})", path,
            s.paddr, s.memsz, ram_base, ram_base + ram_size));
      }
    }
    plan.firmware_elf = std::move(*img);
  } else {
    plan.firmware_raw = std::move(*bytes);  // at RAM base; open() checked it fits in RAM
  }
  return {};
}

Status plan_kernel(const std::string& path, uint64_t ram_base, uint64_t ram_size, BootPlan& plan) {
  auto file = BootFile::open(path, "kernel", ram_size);
  if (!file.ok()) return file.status();
  auto head = file->head(kLinuxImageHeadBytes);
  if (!head.ok()) return head.status();
  auto header = parse_linux_image(*head, file->size(), path);
  if (!header.ok()) return header.status();
  const uint64_t footprint = header->footprint();
  if (header->text_offset >= ram_size || footprint > ram_size - header->text_offset) {
    return Status::error(fmt::format("kernel '{}' needs {} of RAM from {:#x}; the VM has {}", path,
                                     mib(footprint), ram_base + header->text_offset,
                                     mib(ram_size)));
  }
  plan.kernel_offset = header->text_offset;
  plan.kernel_end = header->text_offset + footprint;
  plan.kernel.emplace(std::move(*file));
  return {};
}

// The initrd goes high in RAM, page aligned, below the device tree's area.
Status plan_initrd(const std::string& path, uint64_t ram_size, BootPlan& plan) {
  auto file = BootFile::open(path, "initrd", ram_size);
  if (!file.ok()) return file.status();
  const uint64_t size = file->size();
  if (size == 0) return Status::error(fmt::format("initrd '{}' is empty", path));
  const uint64_t top = ram_size > kDtbArea ? ram_size - kDtbArea : 0;
  if (size > top || ((top - size) & ~(kPage - 1)) < plan.kernel_end) {
    return Status::error(fmt::format(
        "the VM's memory ({}) is too small for the kernel ({}) and the initrd ({}): use a "
        "larger --memory",
        mib(ram_size), mib(plan.kernel_end), mib(size)));
  }
  plan.initrd_offset = (top - size) & ~(kPage - 1);
  plan.initrd.emplace(std::move(*file));
  return {};
}

Result<BootPlan> plan_boot(const BootFiles& files, uint64_t ram_base, uint64_t ram_size) {
  BootPlan plan;
  if (!files.firmware.empty()) {
    if (Status s = plan_firmware(files.firmware, ram_base, ram_size, plan); !s.ok()) return s;
  }
  if (!files.kernel.empty()) {
    if (Status s = plan_kernel(files.kernel, ram_base, ram_size, plan); !s.ok()) return s;
  }
  if (!files.initrd.empty()) {
    if (Status s = plan_initrd(files.initrd, ram_size, plan); !s.ok()) return s;
  }
  // The device tree's area at the top of RAM must stay clear of the kernel (place_dtb).
  if (plan.kernel && ram_size < plan.kernel_end + kDtbArea) {
    return Status::error(fmt::format(
        "the VM's memory ({}) is too small for the kernel: use a larger --memory", mib(ram_size)));
  }
  return plan;
}

}  // namespace

Status check_boot_files(const BootFiles& files, uint64_t ram_size) {
  return plan_boot(files, kRamBase, ram_size).status();
}

Result<BootLayout> load_boot_files(const BootFiles& files, mem::Bus& bus) {
  if (files.kernel.empty()) return Status::error("no kernel to boot");
  auto plan = plan_boot(files, bus.ram_base(), bus.ram_size());
  if (!plan.ok()) return plan.status();
  BootLayout layout;
  const uint64_t base = bus.ram_base();
  if (plan->firmware_elf) {
    if (Status s = load_elf(*plan->firmware_elf, bus, plan->firmware_path); !s.ok()) return s;
    layout.firmware_entry = plan->firmware_elf->entry;
  } else if (plan->firmware_raw) {
    const std::vector<uint8_t>& raw = *plan->firmware_raw;
    std::memcpy(bus.ram_ptr(base, raw.size()), raw.data(), raw.size());
    layout.firmware_entry = base;
  }
  if (Status s = plan->kernel->copy_to(bus, base + plan->kernel_offset); !s.ok()) return s;
  layout.kernel_entry = base + plan->kernel_offset;
  layout.kernel_end = base + plan->kernel_end;
  if (plan->initrd) {
    layout.initrd_start = base + plan->initrd_offset;
    layout.initrd_end = layout.initrd_start + plan->initrd->size();
    if (Status s = plan->initrd->copy_to(bus, layout.initrd_start); !s.ok()) return s;
  }
  return layout;
}

Status place_dtb(const std::vector<uint8_t>& dtb, mem::Bus& bus, BootLayout& layout) {
  const uint64_t ram_end = bus.ram_base() + bus.ram_size();
  const uint64_t floor = std::max(layout.kernel_end, layout.initrd_end);
  if (dtb.size() + 64 > kDtbArea || ram_end < floor + kDtbArea) {
    return Status::error(
        fmt::format("the VM's memory ({}) is too small for the kernel: use a larger --memory",
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
