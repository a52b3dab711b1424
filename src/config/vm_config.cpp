#include "config/vm_config.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <set>

namespace nimbus::config {

Status parse_machine_config(const json& j, VmConfig& into, bool patch) {
  const std::string what = "machine-config";
  if (Status s = check_object(j, what, {"vcpu_count", "mem_size_mib"}); !s.ok()) return s;
  uint64_t vcpus = into.vcpus, mem = into.mem_mib;
  if (Status s = get_uint(j, "vcpu_count", what, 1, kMaxVcpus, vcpus, !patch); !s.ok()) return s;
  if (Status s = get_uint(j, "mem_size_mib", what, kMinMemMib, kMaxMemMib, mem, !patch); !s.ok())
    return s;
  into.vcpus = static_cast<unsigned>(vcpus);
  into.mem_mib = mem;
  return {};
}

Status parse_boot_source(const json& j, VmConfig& into) {
  const std::string what = "boot-source";
  if (Status s =
          check_object(j, what, {"kernel_image_path", "initrd_path", "boot_args", "firmware_path"});
      !s.ok()) {
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

Result<VmConfig> parse_vm_config(const json& j) {
  if (Status s = check_object(
          j, "the VM configuration",
          {"machine-config", "boot-source", "drives", "network-interfaces", "entropy", "metadata"});
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
      auto drive = disk_from_json(d, "");
      if (!drive.ok()) return drive.status();
      if (!ids.insert("d:" + drive->id).second)
        return Status::error(fmt::format("drive '{}' is given twice", drive->id));
      c.drives.push_back(*drive);
    }
  }
  if (j.contains("network-interfaces")) {
    if (!j.at("network-interfaces").is_array())
      return Status::error("network-interfaces must be an array");
    for (const json& n : j.at("network-interfaces")) {
      auto nic = nic_from_json(n, "");
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
  if (j.contains("metadata")) {
    auto metadata = parse_metadata(j.at("metadata"));
    if (!metadata.ok()) return metadata.status();
    c.metadata = std::move(*metadata);
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
  for (const DiskSpec& d : c.drives) j["drives"].push_back(to_json(d));
  j["network-interfaces"] = json::array();
  for (const NicSpec& n : c.nics) j["network-interfaces"].push_back(to_json(n));
  j["entropy"] = c.entropy;
  if (c.metadata) j["metadata"] = to_json(*c.metadata);
  return j;
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

}  // namespace nimbus::config
