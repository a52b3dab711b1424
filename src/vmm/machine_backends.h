// The VMM opens the host side of a VM's devices — disk images, network backends, the
// virtio console's file — from the typed configuration, and hands them to the machine
// (VirtMachine::create), which opens no host file itself.
#pragma once

#include <memory>
#include <string>

#include "backends/net/metadata_route.h"
#include "common/status.h"
#include "machine/virt/virt_machine.h"
#include "vmm/vm_config.h"

namespace nimbus::vmm {

// The disks and NICs of `config`, in order (vda..., eth0...). Errors name the drive or
// network interface. The network backends are created but not started (the device starts
// them). User-mode networks route 169.254.169.254:80 to `metadata` (null: nowhere).
Result<machine::virt::VirtBackends> open_backends(
    const VmConfig& config, std::shared_ptr<backends::MetadataLink> metadata = nullptr);

// A virtio console whose output is appended to `path` (`nimbus run --virtio-console`).
Result<std::function<void(const uint8_t*, size_t)>> open_console_file(const std::string& path);

}  // namespace nimbus::vmm
