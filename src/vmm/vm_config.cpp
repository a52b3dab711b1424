#include "vmm/vm_config.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "common/mac.h"
#include "machine/virt/boot_image.h"
#include "machine/virt/memory_map.h"

namespace nimbus::vmm {

// nimbusd checks vCPU counts against config's limit without linking the machine.
static_assert(config::kMaxVcpus == machine::virt::kMaxHarts,
              "config::kMaxVcpus must be the virt board's kMaxHarts");

namespace {

constexpr const char* kDefaultBootArgs = "console=ttyS0 earlycon=sbi";

}  // namespace

Result<DriveConfig> parse_drive(const json& j, const std::string& id) {
  return config::disk_from_json(j, id);
}

Result<NetConfig> parse_nic(const json& j, const std::string& id) {
  return config::nic_from_json(j, id);
}

Result<machine::virt::VirtConfig> to_virt_config(const VmConfig& c, const std::string& images_dir) {
  machine::virt::VirtConfig v;
  v.harts = c.vcpus;
  v.ram_size = c.mem_mib << 20;
  v.boot.firmware = c.firmware;
  v.rng = c.entropy;
  int root = -1;
  std::set<std::string> macs;
  for (size_t i = 0; i < c.drives.size(); i++) {
    const DriveConfig& d = c.drives[i];
    if (access(d.path.c_str(), d.read_only ? R_OK : R_OK | W_OK) != 0) {
      return Status::error(fmt::format("drive '{}': cannot {} '{}': {}", d.id,
                                       d.read_only ? "read" : "read and write", d.path,
                                       std::strerror(errno)));
    }
    if (d.root) {
      if (root >= 0) return Status::error("only one drive can be the root device");
      root = static_cast<int>(i);
    }
  }
  for (const NetConfig& n : c.nics) {
    auto mac = parse_mac(n.mac);
    if (!mac.ok())
      return Status::error(fmt::format("network interface '{}': {}", n.id, mac.message()));
    if (!macs.insert(n.mac).second) {
      return Status::error(
          fmt::format("network interface '{}': MAC {} is used twice", n.id, n.mac));
    }
  }
  const bool bundled = c.kernel.empty();
  v.boot.kernel = bundled ? images_dir + "/Image" : c.kernel;
  // The bundled kernel boots its initramfs unless a root drive is given.
  v.boot.initrd = !c.initrd.empty()       ? c.initrd
                  : (bundled && root < 0) ? images_dir + "/initramfs.cpio.gz"
                                          : "";
  if (!c.boot_args.empty()) {
    v.bootargs = c.boot_args;
  } else {
    v.bootargs = kDefaultBootArgs;
    if (root >= 0) v.bootargs += fmt::format(" root=/dev/vd{} rw", static_cast<char>('a' + root));
  }
  if (Status s = machine::virt::check_boot_files(v.boot, v.ram_size); !s.ok()) {
    return Status::error("boot-source: " + s.message());
  }
  return v;
}

Status check_boot_source(const VmConfig& c) {
  machine::virt::BootFiles files;
  files.kernel = c.kernel;
  files.initrd = c.initrd;
  files.firmware = c.firmware;
  if (Status s = machine::virt::check_boot_files(files, c.mem_mib << 20); !s.ok()) {
    return Status::error("boot-source: " + s.message());
  }
  return {};
}

}  // namespace nimbus::vmm
