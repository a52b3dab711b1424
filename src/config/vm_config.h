// A VM's configuration as the API, a --config file, a snapshot and nimbusd's config.json
// carry it, in JSON with Firecracker's resource names where Firecracker has one:
//
//   { "machine-config": { "vcpu_count": 2, "mem_size_mib": 512 },
//     "boot-source": { "kernel_image_path": "...", "initrd_path": "...",
//                      "boot_args": "...", "firmware_path": "..." },
//     "drives": [ { "drive_id": "rootfs", "path_on_host": "disk.qcow2",
//                   "is_root_device": true, "is_read_only": false, "format": "auto" } ],
//     "network-interfaces": [ { "iface_id": "eth0", "mode": "user",   (device_json.h)
//         "host_forwards": [ { "protocol": "tcp", "host_address": "127.0.0.1",
//                              "host_port": 8080, "guest_port": 80 } ],
//         "guest_mac": "52:54:00:12:34:56" } ],
//     "entropy": true,
//     "metadata": { "data": {...}, "http_tokens": "optional", ... } }    (metadata_config.h)
//
// Parsing is strict: unknown fields, wrong types and out-of-range values are errors whose
// message names the field and says what is accepted. Here and not in vmm/ so that nimbusd,
// which writes this document, does not link the emulator; the checks that need the host or
// the machine (files, MACs, boot images) are the VMM's (vmm/vm_config.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/device_json.h"
#include "config/devices.h"
#include "config/json_fields.h"
#include "config/metadata_config.h"

namespace nimbus::config {

// The most harts the virt board has (machine::virt::kMaxHarts; vmm/vm_config.cpp asserts
// they agree).
constexpr unsigned kMaxVcpus = 8;
constexpr uint64_t kMinMemMib = 16;
constexpr uint64_t kMaxMemMib = 64 * 1024;

struct VmConfig {
  unsigned vcpus = 1;
  uint64_t mem_mib = 256;
  std::string kernel;  // empty: the bundled kernel (and initramfs unless a root drive is given)
  std::string initrd;
  std::string boot_args;  // empty: a default console line (plus root= for a root drive)
  std::string firmware;   // empty: the built-in SBI
  std::vector<DiskSpec> drives;
  std::vector<NicSpec> nics;
  bool entropy = true;
  std::optional<MetadataConfig> metadata;  // absent: no instance metadata service
};

// Sections of the document, each an object. `patch` accepts a subset of the fields and
// applies them over `into`.
Status parse_machine_config(const json& j, VmConfig& into, bool patch);
Status parse_boot_source(const json& j, VmConfig& into);
// A whole document (a --config file, the one inside a snapshot, nimbusd's config.json).
Result<VmConfig> parse_vm_config(const json& j);
json to_json(const VmConfig& config);

// Where the bundled guest images are: $NIMBUS_IMAGES, then images/ beside the build or
// install directory of this executable, then ./images.
std::string bundled_images_dir();

}  // namespace nimbus::config
