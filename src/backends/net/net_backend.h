// A network card's host side: where the guest's Ethernet frames go and come from.
// virtio-net sees only this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

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
};

// Parses a --net value and creates the backend:
//   user[,hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,net=10.0.2.0/24]
//   switch,path=SOCKET   a host-local switch shared by the VMs given the same SOCKET
// hostfwd also takes udp:. HOSTADDR defaults to 127.0.0.1 (QEMU's default is 0.0.0.0,
// which would expose the guest's services to the whole network; ask for it explicitly),
// GUESTADDR to the address DHCP hands out (.15 of the user network).
// SOCKET names the switch: its endpoints live in the directory SOCKET.d (created on first
// use); see switch_backend.h.
Result<std::unique_ptr<NetBackend>> open_net(const std::string& spec);

// IPv4 addresses below are in host byte order (10.0.2.2 is 0x0a000202).
struct HostForward {
  bool udp = false;
  uint32_t host_addr = 0;
  uint16_t host_port = 0;
  uint32_t guest_addr = 0;
  uint16_t guest_port = 0;
};

// `user`: user-mode networking (libslirp). Within the network: the gateway/host is .2,
// the DNS forwarder .3, DHCP hands out from .15.
struct UserNetOptions {
  uint32_t network = 0x0a000200;  // 10.0.2.0
  int prefix_len = 24;
  std::vector<HostForward> forwards;
};

// `switch`: a host-local switch shared by the VMs given the same path.
struct SwitchNetOptions {
  std::string path;
};

using NetSpec = std::variant<UserNetOptions, SwitchNetOptions>;

// The parsing half of open_net: strict, every error names the offending part.
Result<NetSpec> parse_net_spec(const std::string& spec);

// "10.0.2.15" for 0x0a00020f.
std::string format_ipv4(uint32_t addr);

}  // namespace nimbus::backends
