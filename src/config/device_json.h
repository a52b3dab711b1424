// The JSON form of disks and NICs, as the VMM's API, a --config file, a snapshot and
// nimbusd's config.json carry them (Firecracker's names where Firecracker has one):
//   { "drive_id": "rootfs", "path_on_host": "disk.qcow2", "is_root_device": true,
//     "is_read_only": false, "format": "auto" }
//   { "iface_id": "eth0", "mode": "user", "network": "10.0.2.0/24",
//     "host_forwards": [ { "protocol": "tcp", "host_address": "127.0.0.1", "host_port": 8080,
//                          "guest_address": "10.0.2.15", "guest_port": 80 } ],
//     "guest_mac": "52:54:00:12:34:56" }
//   { "iface_id": "eth1", "mode": "switch", "switch_path": "/run/sw", "guest_mac": "..." }
// "network" is written only when it is not the default, so configurations without it
// read and write the same as before it existed.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "config/devices.h"
#include "config/json_fields.h"

namespace nimbus::config {

// `id` is the id in the request path (or empty in a whole document); the body's id must
// match it.
Result<DiskSpec> disk_from_json(const json& j, const std::string& id);
// Without guest_mac the NIC gets a random 52:54:00 address.
Result<NicSpec> nic_from_json(const json& j, const std::string& id);
Result<PortForward> forward_from_json(const json& j, const std::string& what);
// A NIC's forwards: an array of at most kMaxForwards forwards, each as forward_from_json
// (`what` names the array in errors: "...: host_forwards[2]: ..."). Their checks against
// each other and the network are check_user_forwards (devices.h).
constexpr size_t kMaxForwards = 64;
Result<std::vector<PortForward>> forwards_from_json(const json& j, const std::string& what);

json to_json(const DiskSpec& disk);
json to_json(const NicSpec& nic);
json to_json(const PortForward& forward);

}  // namespace nimbus::config
