// A network card's host side: where the guest's Ethernet frames go and come from.
// virtio-net sees only this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/net/metadata_route.h"
#include "common/status.h"
#include "config/devices.h"

namespace nimbus::backends {

class NetBackend {
 public:
  // Hands one frame to the guest. Returns false when the guest has no receive buffer
  // right now; the backend then keeps the frame (bounded queue) and retries after
  // resume_receive(), or drops it when its queue is full, as a real NIC would.
  using Receiver = std::function<bool(const uint8_t* frame, size_t len)>;

  virtual ~NetBackend() = default;
  // Starts the backend's own thread(s); frames for the guest arrive through `receiver`
  // on those threads.
  virtual Status start(Receiver receiver) = 0;
  // A frame from the guest (without virtio-net header); any thread.
  virtual void send(const uint8_t* frame, size_t len) = 0;
  // The guest posted receive buffers: retry queued frames. Any thread.
  virtual void resume_receive() = 0;
  // Stops the threads; no receiver call happens after it returns.
  virtual void stop() = 0;
  // Replaces the host port forwards while the backend runs, all or nothing: on an error
  // the forwards are as they were. Only a user-mode network has forwards; the others
  // refuse. Any thread.
  virtual Status set_forwards(const std::vector<config::PortForward>& forwards) {
    (void)forwards;
    return Status::invalid_argument("only a user-mode network has port forwards");
  }
};

// `user`: user-mode networking (libslirp). Within the network: the gateway/host is .2,
// the DNS forwarder .3, DHCP hands out from .15. IPv4 addresses in host byte order.
struct UserNetOptions {
  uint32_t network = 0x0a000200;  // 10.0.2.0
  int prefix_len = 24;
  // Empty addresses take their defaults (config/devices.h: host 127.0.0.1, guest .15).
  std::vector<config::PortForward> forwards;
  // The instance metadata service at 169.254.169.254:80 (metadata_route.h); null: none, and
  // the guest's packets to 169.254.0.0/16 are dropped all the same.
  std::shared_ptr<MetadataLink> metadata;
};

// Creates the backend of a NIC (parsed and checked at the edge, config/device_flags.h or
// config/device_json.h): user-mode networking, or a host-local switch shared by the VMs
// given the same switch_path (its endpoints live in the directory PATH.d, created on first
// use; see switch_backend.h). The forwards are checked again against the network. A
// user-mode network routes 169.254.169.254:80 to `metadata` (a switch has no router: it
// ignores it).
Result<std::unique_ptr<NetBackend>> open_net(const config::NicSpec& nic,
                                             std::shared_ptr<MetadataLink> metadata = nullptr);

}  // namespace nimbus::backends
