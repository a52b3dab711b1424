// What changes when a user-mode NIC's port forwards are replaced while it runs: the
// forwards to remove and the ones to add, so that the forwards that stay keep their
// listening sockets (and the connections through them) untouched.
#pragma once

#include <vector>

#include "config/devices.h"

namespace nimbus::backends {

struct ForwardChanges {
  std::vector<config::PortForward> removed;  // in the old set and not the new, in its order
  std::vector<config::PortForward> added;    // in the new set and not the old, in its order
  bool empty() const { return removed.empty() && added.empty(); }
};

// Forwards compare by what they do, with their defaults filled in (the host address
// 127.0.0.1, the guest's DHCP address of `net`): "" and "127.0.0.1" are the same host
// address. A forward whose guest side changed is removed and added again. Call on checked
// sets (config::check_user_forwards).
ForwardChanges diff_forwards(const std::vector<config::PortForward>& from,
                             const std::vector<config::PortForward>& to,
                             const config::UserNetwork& net);

}  // namespace nimbus::backends
