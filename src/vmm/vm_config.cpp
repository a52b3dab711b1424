#include "vmm/vm_config.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "common/mac.h"
#include "machine/virt/boot_image.h"
#include "machine/virt/memory_map.h"

namespace nimbus::vmm {

using config::check_object;
using config::get_string;
using config::get_uint;

namespace {

constexpr const char* kDefaultBootArgs = "console=ttyS0 earlycon=sbi";

}  // namespace

Status parse_machine_config(const json& j, VmConfig& into, bool patch) {
  const std::string what = "machine-config";
  if (Status s = check_object(j, what, {"vcpu_count", "mem_size_mib"}); !s.ok()) return s;
  uint64_t vcpus = into.vcpus, mem = into.mem_mib;
  if (Status s = get_uint(j, "vcpu_count", what, 1, machine::virt::kMaxHarts, vcpus, !patch); !s.ok()) return s;
  if (Status s = get_uint(j, "mem_size_mib", what, kMinMemMib, kMaxMemMib, mem, !patch); !s.ok()) return s;
  into.vcpus = static_cast<unsigned>(vcpus);
  into.mem_mib = mem;
  return {};
}

Status parse_boot_source(const json& j, VmConfig& into) {
  const std::string what = "boot-source";
  if (Status s = check_object(j, what, {"kernel_image_path", "initrd_path", "boot_args", "firmware_path"}); !s.ok()) {
    return s;
  }
  VmConfig c = into;
  c.kernel.clear();
  c.initrd.clear();
  c.boot_args.clear();
  c.firmware.clear();
  Status s = get_string(j, "kernel_image_path", what, c.kernel, false);
  if (s.ok()) s = get_string(j, "initrd_path", what, c.initrd, false);
  if (s.ok()) s = get_string(j, "boot_args", what, c.boot_args, false, 2048);
  if (s.ok()) s = get_string(j, "firmware_path", what, c.firmware, false);
  if (!s.ok()) return s;
  into = c;
  return {};
}

Result<DriveConfig> parse_drive(const json& j, const std::string& id) { return config::disk_from_json(j, id); }

Result<NetConfig> parse_nic(const json& j, const std::string& id) { return config::nic_from_json(j, id); }

Result<VmConfig> parse_vm_config(const json& j) {
  if (Status s = check_object(j, "the VM configuration",
                              {"machine-config", "boot-source", "drives", "network-interfaces", "entropy"});
      !s.ok()) {
    return s;
  }
  VmConfig c;
  if (j.contains("machine-config")) {
    if (Status s = parse_machine_config(j.at("machine-config"), c, true); !s.ok()) return s;
  }
  if (j.contains("boot-source")) {
    if (Status s = parse_boot_source(j.at("boot-source"), c); !s.ok()) return s;
  }
  std::set<std::string> ids;
  if (j.contains("drives")) {
    if (!j.at("drives").is_array()) return Status::error("drives must be an array");
    for (const json& d : j.at("drives")) {
      auto drive = parse_drive(d, "");
      if (!drive.ok()) return drive.status();
      if (!ids.insert("d:" + drive->id).second) return Status::error(fmt::format("drive '{}' is given twice", drive->id));
      c.drives.push_back(*drive);
    }
  }
  if (j.contains("network-interfaces")) {
    if (!j.at("network-interfaces").is_array()) return Status::error("network-interfaces must be an array");
    for (const json& n : j.at("network-interfaces")) {
      auto nic = parse_nic(n, "");
      if (!nic.ok()) return nic.status();
      if (!ids.insert("n:" + nic->id).second) {
        return Status::error(fmt::format("network interface '{}' is given twice", nic->id));
      }
      c.nics.push_back(*nic);
    }
  }
  if (j.contains("entropy")) {
    if (!j.at("entropy").is_boolean()) return Status::error("entropy must be true or false");
    c.entropy = j.at("entropy").get<bool>();
  }
  return c;
}

json to_json(const VmConfig& c) {
  json j;
  j["machine-config"] = {{"vcpu_count", c.vcpus}, {"mem_size_mib", c.mem_mib}};
  json boot = json::object();
  if (!c.kernel.empty()) boot["kernel_image_path"] = c.kernel;
  if (!c.initrd.empty()) boot["initrd_path"] = c.initrd;
  if (!c.boot_args.empty()) boot["boot_args"] = c.boot_args;
  if (!c.firmware.empty()) boot["firmware_path"] = c.firmware;
  j["boot-source"] = boot;
  j["drives"] = json::array();
  for (const DriveConfig& d : c.drives) j["drives"].push_back(config::to_json(d));
  j["network-interfaces"] = json::array();
  for (const NetConfig& n : c.nics) j["network-interfaces"].push_back(config::to_json(n));
  j["entropy"] = c.entropy;
  return j;
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
      return Status::error(fmt::format("drive '{}': cannot {} '{}': {}", d.id, d.read_only ? "read" : "read and write",
                                       d.path, std::strerror(errno)));
    }
    if (d.root) {
      if (root >= 0) return Status::error("only one drive can be the root device");
      root = static_cast<int>(i);
    }
  }
  for (const NetConfig& n : c.nics) {
    auto mac = parse_mac(n.mac);
    if (!mac.ok()) return Status::error(fmt::format("network interface '{}': {}", n.id, mac.message()));
    if (!macs.insert(n.mac).second) {
      return Status::error(fmt::format("network interface '{}': MAC {} is used twice", n.id, n.mac));
    }
  }
  const bool bundled = c.kernel.empty();
  v.boot.kernel = bundled ? images_dir + "/Image" : c.kernel;
  // The bundled kernel boots its initramfs unless a root drive is given.
  v.boot.initrd = !c.initrd.empty() ? c.initrd : (bundled && root < 0) ? images_dir + "/initramfs.cpio.gz" : "";
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

std::string bundled_images_dir() {
  if (const char* env = std::getenv("NIMBUS_IMAGES"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto dir : {exe.parent_path().parent_path() / "images",
                     exe.parent_path().parent_path() / "share" / "nimbus" / "images"}) {
      if (std::filesystem::exists(dir / "Image", ec)) return dir.string();
    }
  }
  return "images";
}

}  // namespace nimbus::vmm
