// A VM on a private network (a VPC subnet) rather than the host network: its eth1 joins
// the switch of that network on this host, STATE_DIR/net/vni-N.d (same layout and security
// as hostnet.d), with a static address; the tunnel (backends/net/tunnel.h) links that
// switch with the same network's switches on other hosts. docs/nimbusd.md, "Private
// networks".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/net/tunnel.h"
#include "common/status.h"

namespace nimbus::host {

struct VmNetwork {
  uint32_t vni = 0;     // 1..16777215
  std::string address;  // "172.31.16.5/20": the guest's eth1 address and prefix
  std::string gateway;  // "172.31.16.1" ("" for none): recorded, not a guest route (docs)
  unsigned mtu = 1500;  // what the guest is told on eth1 (virtio-net's MTU)
  bool operator==(const VmNetwork&) const = default;
};

constexpr unsigned kMinNetworkMtu = 576, kMaxNetworkMtu = 9000;

// The create body's "network" object {vni, address, gateway, mtu}, checked strictly: vni
// and address required; the address a host of its subnet (neither its network nor its
// broadcast address, prefix 8-30), not loopback, link-local, multicast or 0/8, and its
// subnet clear of the user network 10.0.2.0/24; the gateway another host of the subnet.
Result<VmNetwork> parse_vm_network(const nlohmann::json& j);
nlohmann::json to_json(const VmNetwork& n);
// What the state database keeps ("" for none; anything unparsable reads as none).
std::string network_to_text(const std::optional<VmNetwork>& n);
std::optional<VmNetwork> network_from_text(const std::string& text);

// STATE_DIR/net/vni-N: the switch of network N on this host (the directory is PATH.d).
std::string network_switch_path(const std::string& state_dir, uint32_t vni);
// The guest's eth1 MAC on a network: 52:54 and the four bytes of its address, unique in
// the network as the addresses are (the host network's MACs derive from the slot, which
// other hosts reuse).
std::string network_mac(const VmNetwork& n);
// The kernel's ip= argument for eth1: "ADDR::0.0.0.0:NETMASK:HOSTNAME:eth1:off".
std::string network_ip_arg(const VmNetwork& n, const std::string& hostname);
// The address without its prefix ("172.31.16.5").
std::string network_host_address(const VmNetwork& n);

// PUT /v1/network/peers's and the heartbeat reply's list [{"host", "endpoint"}, ...]
// (the endpoints are checked by Tunnel::set_peers).
Result<std::vector<backends::TunnelPeer>> parse_tunnel_peers(const nlohmann::json& list);
nlohmann::json to_json(const std::vector<backends::TunnelPeer>& peers);

}  // namespace nimbus::host
