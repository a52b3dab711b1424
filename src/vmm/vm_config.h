// The VMM's half of a VM's configuration: the document and its parsers are config's
// (config/vm_config.h, shared with nimbusd); here are the checks that need the host or the
// machine, and the machine's configuration built from it.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "config/vm_config.h"
#include "machine/virt/virt_machine.h"

namespace nimbus::vmm {

using config::bundled_images_dir;
using config::json;
using config::kMaxMemMib;
using config::kMinMemMib;
using config::parse_boot_source;
using config::parse_machine_config;
using config::parse_vm_config;
using config::to_json;
using config::VmConfig;

// Disks and NICs are the typed configuration of src/config, shared with nimbusd.
using HostForward = config::PortForward;
using NetConfig = config::NicSpec;
using DriveConfig = config::DiskSpec;

// `id` is the id in the request path (or empty in a whole document); the body's id must
// match it.
Result<DriveConfig> parse_drive(const json& j, const std::string& id);
Result<NetConfig> parse_nic(const json& j, const std::string& id);

// Ids: 1-64 characters of [A-Za-z0-9_.-].
using config::valid_id;

// Checks that can only be made against the host (files exist, MACs are unique, the board
// has enough slots) and builds the machine's configuration. `images_dir` holds the
// bundled Image and initramfs.cpio.gz used when no kernel is given.
Result<machine::virt::VirtConfig> to_virt_config(const VmConfig& config,
                                                 const std::string& images_dir);

// The boot files `config` names (the bundled ones are not checked), against the host and
// the VM's memory: each a regular file that fits in RAM where it goes, the kernel a whole
// RISC-V Linux Image. Reads no more than a header (and the firmware); for PUT
// /boot-source, so a bad file is refused before it enters the configuration.
Status check_boot_source(const VmConfig& config);

}  // namespace nimbus::vmm
