// A VM's configuration as the API, a --config file and a snapshot carry it, in JSON with
// Firecracker's resource names where Firecracker has one:
//
//   { "machine-config": { "vcpu_count": 2, "mem_size_mib": 512 },
//     "boot-source": { "kernel_image_path": "...", "initrd_path": "...",
//                      "boot_args": "...", "firmware_path": "..." },
//     "drives": [ { "drive_id": "rootfs", "path_on_host": "disk.qcow2",
//                   "is_root_device": true, "is_read_only": false, "format": "auto" } ],
//     "network-interfaces": [ { "iface_id": "eth0", "mode": "user",   (config/device_json.h)
//         "host_forwards": [ { "protocol": "tcp", "host_address": "127.0.0.1",
//                              "host_port": 8080, "guest_port": 80 } ],
//         "guest_mac": "52:54:00:12:34:56" } ],
//     "entropy": true }
//
// Parsing is strict: unknown fields, wrong types and out-of-range values are errors whose
// message names the field and says what is accepted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "config/device_json.h"
#include "machine/virt/virt_machine.h"

namespace nimbus::vmm {

using nlohmann::json;

constexpr uint64_t kMinMemMib = 16;
constexpr uint64_t kMaxMemMib = 64 * 1024;

// Disks and NICs are the typed configuration of src/config, shared with nimbusd.
using HostForward = config::PortForward;
using NetConfig = config::NicSpec;
using DriveConfig = config::DiskSpec;

struct VmConfig {
  unsigned vcpus = 1;
  uint64_t mem_mib = 256;
  std::string kernel;  // empty: the bundled kernel (and initramfs unless a root drive is given)
  std::string initrd;
  std::string boot_args;  // empty: a default console line (plus root= for a root drive)
  std::string firmware;   // empty: the built-in SBI
  std::vector<DriveConfig> drives;
  std::vector<NetConfig> nics;
  bool entropy = true;
};

// Sections of the document, each an object. `patch` accepts a subset of the fields and
// applies them over `into`.
Status parse_machine_config(const json& j, VmConfig& into, bool patch);
Status parse_boot_source(const json& j, VmConfig& into);
// `id` is the id in the request path (or empty in a whole document); the body's id must
// match it.
Result<DriveConfig> parse_drive(const json& j, const std::string& id);
Result<NetConfig> parse_nic(const json& j, const std::string& id);
// A whole document (a --config file, or the one inside a snapshot).
Result<VmConfig> parse_vm_config(const json& j);
json to_json(const VmConfig& config);

// Ids: 1-64 characters of [A-Za-z0-9_.-].
using config::valid_id;

// Checks that can only be made against the host (files exist, MACs are unique, the board
// has enough slots) and builds the machine's configuration. `images_dir` holds the
// bundled Image and initramfs.cpio.gz used when no kernel is given.
Result<machine::virt::VirtConfig> to_virt_config(const VmConfig& config, const std::string& images_dir);

// The boot files `config` names (the bundled ones are not checked), against the host and
// the VM's memory: each a regular file that fits in RAM where it goes, the kernel a whole
// RISC-V Linux Image. Reads no more than a header (and the firmware); for PUT
// /boot-source, so a bad file is refused before it enters the configuration.
Status check_boot_source(const VmConfig& config);

// Where the bundled guest images are: $NIMBUS_IMAGES, then images/ beside the build or
// install directory of this executable, then ./images.
std::string bundled_images_dir();

}  // namespace nimbus::vmm
