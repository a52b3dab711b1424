#include "vmm/vm_config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "backends/block/block_backend.h"
#include "common/mac.h"
#include "machine/virt/boot_image.h"
#include "machine/virt/memory_map.h"

namespace nimbus::vmm {

namespace {

constexpr const char* kDefaultBootArgs = "console=ttyS0 earlycon=sbi";

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Checks `j` is an object whose keys are all in `allowed`.
Status check_object(const json& j, const std::string& what, const std::vector<std::string>& allowed) {
  if (!j.is_object()) return Status::error(fmt::format("{} must be a JSON object", what));
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const std::string& a : allowed) known = known || a == key;
    if (!known) {
      return Status::error(fmt::format("unknown field '{}' in {} (accepted: {})", key, what, join(allowed)));
    }
  }
  return {};
}

Status get_string(const json& j, const char* key, const std::string& what, std::string& out, bool required,
                  size_t max_len = 4096) {
  if (!j.contains(key)) {
    return required ? Status::error(fmt::format("{}: '{}' is required", what, key)) : Status();
  }
  const json& v = j.at(key);
  if (!v.is_string()) return Status::error(fmt::format("{}: '{}' must be a string", what, key));
  out = v.get<std::string>();
  if (out.size() > max_len) return Status::error(fmt::format("{}: '{}' is longer than {} bytes", what, key, max_len));
  if (out.find('\0') != std::string::npos) return Status::error(fmt::format("{}: '{}' contains a NUL byte", what, key));
  return {};
}

Status get_bool(const json& j, const char* key, const std::string& what, bool& out) {
  if (!j.contains(key)) return {};
  if (!j.at(key).is_boolean()) return Status::error(fmt::format("{}: '{}' must be true or false", what, key));
  out = j.at(key).get<bool>();
  return {};
}

Status get_uint(const json& j, const char* key, const std::string& what, uint64_t lo, uint64_t hi, uint64_t& out,
                bool required) {
  if (!j.contains(key)) {
    return required ? Status::error(fmt::format("{}: '{}' is required", what, key)) : Status();
  }
  const json& v = j.at(key);
  if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0) ||
      v.get<uint64_t>() < lo || v.get<uint64_t>() > hi) {
    return Status::error(fmt::format("{}: '{}' must be an integer from {} to {}", what, key, lo, hi));
  }
  out = v.get<uint64_t>();
  return {};
}

bool valid_ipv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

Result<HostForward> parse_forward(const json& j, const std::string& what) {
  if (Status s = check_object(j, what, {"protocol", "host_address", "host_port", "guest_address", "guest_port"});
      !s.ok()) {
    return s;
  }
  HostForward f;
  uint64_t host_port = 0, guest_port = 0;
  Status s = get_string(j, "protocol", what, f.protocol, false);
  if (s.ok()) s = get_string(j, "host_address", what, f.host_address, false);
  if (s.ok()) s = get_uint(j, "host_port", what, 1, 65535, host_port, true);
  if (s.ok()) s = get_string(j, "guest_address", what, f.guest_address, false);
  if (s.ok()) s = get_uint(j, "guest_port", what, 1, 65535, guest_port, true);
  if (!s.ok()) return s;
  if (f.protocol != "tcp" && f.protocol != "udp") {
    return Status::error(fmt::format("{}: protocol '{}' is not tcp or udp", what, f.protocol));
  }
  if (!f.host_address.empty() && !valid_ipv4(f.host_address)) {
    return Status::error(fmt::format("{}: host_address '{}' is not an IPv4 address", what, f.host_address));
  }
  if (!f.guest_address.empty() && !valid_ipv4(f.guest_address)) {
    return Status::error(fmt::format("{}: guest_address '{}' is not an IPv4 address", what, f.guest_address));
  }
  f.host_port = static_cast<uint16_t>(host_port);
  f.guest_port = static_cast<uint16_t>(guest_port);
  return f;
}

}  // namespace

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

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

Result<DriveConfig> parse_drive(const json& j, const std::string& id) {
  const std::string what = id.empty() ? "drive" : fmt::format("drive '{}'", id);
  if (Status s = check_object(j, what, {"drive_id", "path_on_host", "is_root_device", "is_read_only", "format"});
      !s.ok()) {
    return s;
  }
  DriveConfig d;
  Status s = get_string(j, "drive_id", what, d.id, id.empty());
  if (s.ok()) s = get_string(j, "path_on_host", what, d.path, true);
  if (s.ok()) s = get_bool(j, "is_root_device", what, d.root);
  if (s.ok()) s = get_bool(j, "is_read_only", what, d.read_only);
  if (s.ok()) s = get_string(j, "format", what, d.format, false);
  if (!s.ok()) return s;
  if (d.id.empty()) d.id = id;
  if (!id.empty() && d.id != id) {
    return Status::error(fmt::format("{}: drive_id '{}' in the body does not match the path", what, d.id));
  }
  if (!valid_id(d.id)) return Status::error(fmt::format("drive_id '{}' must be 1-64 characters of A-Z a-z 0-9 _ . -", d.id));
  if (d.path.empty()) return Status::error(fmt::format("{}: path_on_host is empty", what));
  if (d.format != "auto" && d.format != "raw" && d.format != "qcow2") {
    return Status::error(fmt::format("{}: format '{}' is not auto, raw or qcow2", what, d.format));
  }
  return d;
}

Result<NetConfig> parse_nic(const json& j, const std::string& id) {
  const std::string what = id.empty() ? "network interface" : fmt::format("network interface '{}'", id);
  if (Status s = check_object(j, what, {"iface_id", "mode", "host_forwards", "switch_path", "guest_mac"}); !s.ok()) {
    return s;
  }
  NetConfig n;
  Status s = get_string(j, "iface_id", what, n.id, id.empty());
  if (s.ok()) s = get_string(j, "mode", what, n.mode, false);
  if (s.ok()) s = get_string(j, "switch_path", what, n.switch_path, false);
  if (s.ok()) s = get_string(j, "guest_mac", what, n.mac, false);
  if (!s.ok()) return s;
  if (n.id.empty()) n.id = id;
  if (!id.empty() && n.id != id) {
    return Status::error(fmt::format("{}: iface_id '{}' in the body does not match the path", what, n.id));
  }
  if (!valid_id(n.id)) return Status::error(fmt::format("iface_id '{}' must be 1-64 characters of A-Z a-z 0-9 _ . -", n.id));
  if (n.mode != "user" && n.mode != "switch") {
    return Status::error(fmt::format("{}: mode '{}' is not user or switch", what, n.mode));
  }
  if (j.contains("host_forwards")) {
    const json& fw = j.at("host_forwards");
    if (!fw.is_array()) return Status::error(fmt::format("{}: host_forwards must be an array", what));
    if (fw.size() > 64) return Status::error(fmt::format("{}: at most 64 host_forwards", what));
    for (size_t i = 0; i < fw.size(); i++) {
      auto f = parse_forward(fw[i], fmt::format("{}: host_forwards[{}]", what, i));
      if (!f.ok()) return f.status();
      n.forwards.push_back(*f);
    }
  }
  if (n.mode == "switch" && n.switch_path.empty()) {
    return Status::error(fmt::format("{}: mode switch needs switch_path", what));
  }
  if (n.mode == "user" && !n.switch_path.empty()) {
    return Status::error(fmt::format("{}: switch_path is only for mode switch", what));
  }
  if (n.mode == "switch" && !n.forwards.empty()) {
    return Status::error(fmt::format("{}: host_forwards are only for mode user", what));
  }
  if (!n.mac.empty()) {
    auto mac = parse_mac(n.mac);
    if (!mac.ok()) return Status::error(fmt::format("{}: guest_mac {}", what, mac.message()));
    n.mac = format_mac(*mac);
  } else {
    n.mac = format_mac(random_mac());
  }
  return n;
}

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
  for (const DriveConfig& d : c.drives) {
    j["drives"].push_back({{"drive_id", d.id},
                           {"path_on_host", d.path},
                           {"is_root_device", d.root},
                           {"is_read_only", d.read_only},
                           {"format", d.format}});
  }
  j["network-interfaces"] = json::array();
  for (const NetConfig& n : c.nics) {
    json nic = {{"iface_id", n.id}, {"mode", n.mode}, {"guest_mac", n.mac}};
    if (n.mode == "switch") nic["switch_path"] = n.switch_path;
    json fw = json::array();
    for (const HostForward& f : n.forwards) {
      json one = {{"protocol", f.protocol}, {"host_port", f.host_port}, {"guest_port", f.guest_port}};
      if (!f.host_address.empty()) one["host_address"] = f.host_address;
      if (!f.guest_address.empty()) one["guest_address"] = f.guest_address;
      fw.push_back(one);
    }
    if (n.mode == "user") nic["host_forwards"] = fw;
    j["network-interfaces"].push_back(nic);
  }
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
    backends::DiskOptions o;
    o.path = d.path;
    o.read_only = d.read_only;
    o.format = d.format == "raw" ? backends::DiskFormat::kRaw
               : d.format == "qcow2" ? backends::DiskFormat::kQcow2
                                     : backends::DiskFormat::kAuto;
    if (access(d.path.c_str(), d.read_only ? R_OK : R_OK | W_OK) != 0) {
      return Status::error(fmt::format("drive '{}': cannot {} '{}': {}", d.id, d.read_only ? "read" : "read and write",
                                       d.path, std::strerror(errno)));
    }
    if (d.root) {
      if (root >= 0) return Status::error("only one drive can be the root device");
      root = static_cast<int>(i);
    }
    v.disks.push_back(o);
  }
  for (const NetConfig& n : c.nics) {
    machine::virt::NicConfig nic;
    auto mac = parse_mac(n.mac);
    if (!mac.ok()) return Status::error(fmt::format("network interface '{}': {}", n.id, mac.message()));
    if (!macs.insert(n.mac).second) {
      return Status::error(fmt::format("network interface '{}': MAC {} is used twice", n.id, n.mac));
    }
    nic.mac = *mac;
    if (n.mode == "switch") {
      nic.spec = "switch,path=" + n.switch_path;
    } else {
      nic.spec = "user";
      for (const HostForward& f : n.forwards) {
        nic.spec += fmt::format(",hostfwd={}:{}:{}-{}:{}", f.protocol, f.host_address, f.host_port, f.guest_address,
                                f.guest_port);
      }
    }
    v.nics.push_back(nic);
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
