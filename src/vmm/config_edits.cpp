#include "vmm/config_edits.h"

#include <fmt/format.h>

namespace nimbus::vmm {

namespace {

// Replaces the entry with `item`'s id, or appends it.
template <typename T>
void put_by_id(std::vector<T>& items, const T& item) {
  for (T& existing : items) {
    if (existing.id == item.id) {
      existing = item;
      return;
    }
  }
  items.push_back(item);
}

template <typename T>
bool erase_by_id(std::vector<T>& items, const std::string& id) {
  for (auto it = items.begin(); it != items.end(); ++it) {
    if (it->id == id) {
      items.erase(it);
      return true;
    }
  }
  return false;
}

}  // namespace

void apply_machine_shape(VmConfig& config, const MachineShape& shape) {
  config.vcpus = shape.vcpus;
  config.mem_mib = shape.mem_mib;
}

Status apply_boot_source(VmConfig& config, const BootSource& boot) {
  VmConfig edited = config;
  edited.kernel = boot.kernel;
  edited.initrd = boot.initrd;
  edited.boot_args = boot.boot_args;
  edited.firmware = boot.firmware;
  // Checked now (a refusal leaves the configuration as it was) rather than at start.
  if (Status s = check_boot_source(edited); !s.ok()) return s.with_code(Code::kInvalidArgument);
  config = std::move(edited);
  return Status();
}

void apply_drive(VmConfig& config, const DriveConfig& drive) { put_by_id(config.drives, drive); }

Status remove_drive(VmConfig& config, const std::string& id) {
  if (!erase_by_id(config.drives, id))
    return Status::not_found(fmt::format("there is no drive '{}'", id));
  return Status();
}

void apply_nic(VmConfig& config, const NetConfig& nic) { put_by_id(config.nics, nic); }

Status remove_nic(VmConfig& config, const std::string& id) {
  if (!erase_by_id(config.nics, id)) {
    return Status::not_found(fmt::format("there is no network interface '{}'", id));
  }
  return Status();
}

Status apply_nic_forwards(VmConfig& config, const std::string& id,
                          const std::vector<HostForward>& forwards) {
  for (NetConfig& nic : config.nics) {
    if (nic.id != id) continue;
    if (nic.mode != "user") {
      return Status::invalid_argument(fmt::format(
          "network interface '{}' is mode {}: only a user-mode NIC has forwards", id, nic.mode));
    }
    NetConfig edited = nic;
    edited.forwards = forwards;
    // The same check as a configuration's NIC gets where its backend is opened.
    if (Status s = config::check_user_forwards(edited); !s.ok()) {
      return Status::invalid_argument(fmt::format("network interface '{}': {}", id, s.message()));
    }
    nic = std::move(edited);
    return Status();
  }
  return Status::not_found(fmt::format("there is no network interface '{}'", id));
}

}  // namespace nimbus::vmm
