// The rules of each configuration change, on a plain VmConfig: what PUT /drives/ID,
// DELETE /network-interfaces/ID, ... do to the configuration and when they refuse. The Vmm
// applies them under its lock once the VM's state allows an edit; the API's fake applies
// the same ones, so the router's tests see the real rules.
#pragma once

#include <string>

#include "common/status.h"
#include "vmm/vm_config.h"
#include "vmm/vmm_control.h"

namespace nimbus::vmm {

void apply_machine_shape(VmConfig& config, const MachineShape& shape);
// InvalidArgument (and `config` unchanged) if a boot file is not usable with this memory.
Status apply_boot_source(VmConfig& config, const BootSource& boot);
void apply_drive(VmConfig& config, const DriveConfig& drive);
Status remove_drive(VmConfig& config, const std::string& id);  // NotFound
void apply_nic(VmConfig& config, const NetConfig& nic);
Status remove_nic(VmConfig& config, const std::string& id);  // NotFound
// The forwards of NIC `id`: NotFound; InvalidArgument (and `config` unchanged) if it is not
// a user-mode NIC or the set fails config::check_user_forwards.
Status apply_nic_forwards(VmConfig& config, const std::string& id,
                          const std::vector<HostForward>& forwards);

}  // namespace nimbus::vmm
