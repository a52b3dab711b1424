// A NIC's backend from its typed configuration. Nothing is parsed here: the flags and the
// JSON were parsed at the edge (src/config).
#include <memory>

#include "backends/net/net_backend.h"
#include "backends/net/slirp_backend.h"
#include "backends/net/switch_backend.h"

namespace nimbus::backends {

Result<std::unique_ptr<NetBackend>> open_net(const config::NicSpec& nic,
                                             std::shared_ptr<MetadataLink> metadata) {
  if (nic.mode == "switch") {
    if (nic.switch_path.empty()) return Status::error("switch needs path=SOCKET");
    auto backend = SwitchBackend::create(nic.switch_path);
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<NetBackend>(std::move(*backend));
  }
  if (nic.mode != "user")
    return Status::error("unknown network type '" + nic.mode + "' (expected user or switch)");
  // A configuration from JSON has had its fields checked, not the forwards against each
  // other and the network: that is done here, before a port is bound.
  if (Status s = config::check_user_forwards(nic); !s.ok()) return s;
  const config::UserNetwork net = config::user_network_of(nic);
  UserNetOptions options;
  options.network = net.network;
  options.prefix_len = net.prefix_len;
  options.forwards = nic.forwards;
  options.metadata = std::move(metadata);
  auto backend = SlirpBackend::create(options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<NetBackend>(std::move(*backend));
}

}  // namespace nimbus::backends
