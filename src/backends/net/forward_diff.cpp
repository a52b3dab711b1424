#include "backends/net/forward_diff.h"

#include <algorithm>

namespace nimbus::backends {

namespace {

bool same_forward(const config::PortForward& a, const config::PortForward& b,
                  const config::UserNetwork& net) {
  return a.protocol == b.protocol && a.host_port == b.host_port && a.guest_port == b.guest_port &&
         config::host_ipv4(a) == config::host_ipv4(b) &&
         config::guest_ipv4(a, net) == config::guest_ipv4(b, net);
}

// The forwards of `a` that `b` does not have.
std::vector<config::PortForward> missing_from(const std::vector<config::PortForward>& a,
                                              const std::vector<config::PortForward>& b,
                                              const config::UserNetwork& net) {
  std::vector<config::PortForward> out;
  for (const config::PortForward& f : a) {
    const bool kept = std::any_of(
        b.begin(), b.end(), [&](const config::PortForward& g) { return same_forward(f, g, net); });
    if (!kept) out.push_back(f);
  }
  return out;
}

}  // namespace

ForwardChanges diff_forwards(const std::vector<config::PortForward>& from,
                             const std::vector<config::PortForward>& to,
                             const config::UserNetwork& net) {
  return ForwardChanges{missing_from(from, to, net), missing_from(to, from, net)};
}

}  // namespace nimbus::backends
